"""The review queue: answers that need attention (thumbs down, unanswered, weak sources, provider failures),
grouped by similar question with the vectors retrieval stored, most frequent first, resolvable, tenant-scoped."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.models import Role
from accounts.tests.factories import add_member, make_organization
from chatbots.models import Message, MessageRole, MessageStatus
from chatbots.question_groups import QuestionItem, group_similar_questions, review_queue
from chatbots.services import answer_improve, review_resolve
from chatbots.tests.factories import make_bot, make_conversation, make_message
from knowledge.embedders import embed_search_query

pytestmark = pytest.mark.django_db

QUEUE = "/admin/chatbots/reviewqueueentry/"
RESOLVE = "/admin/chatbots/reviewqueueentry/resolve/"
SOURCE = {
    "source_id": 1,
    "title": "Shipping FAQ",
    "url": None,
    "page": None,
    "snippet": "Parcels ship daily.",
}
RETURNS = ("How long do I have to return boots?", "how long can I return my boots")
SHIPPING = ("Do you ship to Switzerland?", "Do you deliver to Switzerland?")


def _asked(bot, question: str, *, vector: bool = True, **answer_fields) -> Message:
    """A visitor's question (with the vector retrieval would have stored) and the bot's answer to it."""
    conversation = make_conversation(bot=bot, visitor_id=f"v-{abs(hash(question)) % 10_000}")
    make_message(
        conversation=conversation, role=MessageRole.USER, text=question,
        question_embedding=embed_search_query(question) if vector else None,
    )  # fmt: skip
    answer_fields.setdefault("sources", [SOURCE])
    return make_message(
        conversation=conversation, role=MessageRole.ASSISTANT, text="An answer.", **answer_fields
    )


@pytest.fixture
def owner_client(client):
    organization = make_organization(name="Acme")
    client.force_login(add_member(organization=organization, role=Role.OWNER))
    client.organization = organization
    return client


def test_similar_questions_group_by_their_vectors_most_frequent_first() -> None:
    now = make_message(conversation=make_conversation()).created_at
    texts = [RETURNS[0], SHIPPING[0], RETURNS[1], "What are your opening hours?", SHIPPING[1], RETURNS[0]]
    items = [
        QuestionItem(question=t, conversation_id=None, asked_at=now, vector=embed_search_query(t))
        for t in texts
    ]
    groups = group_similar_questions(items)
    assert [g.count for g in groups] == [3, 2, 1]
    assert {i.question for i in groups[0].items} == set(RETURNS)
    assert {i.question for i in groups[1].items} == set(SHIPPING)
    # Without vectors (messages stored before vectors were kept) only the same wording groups.
    plain = [
        QuestionItem(question=q, conversation_id=None, asked_at=now) for q in (RETURNS[0], RETURNS[0].upper())
    ]
    assert [g.count for g in group_similar_questions(plain)] == [2]
    assert [g.count for g in group_similar_questions([*plain, items[2]])] == [2, 1]


def test_queue_holds_answers_that_need_attention_grouped_and_of_this_organization_only(owner_client) -> None:
    bot = make_bot(organization=owner_client.organization, name="Helper")
    down = _asked(bot, RETURNS[0], feedback="down", feedback_comment="Wrong")
    fallback = _asked(bot, RETURNS[1], provider="fallback_reply", sources=[])
    weak = _asked(bot, RETURNS[0], retrieval_score=0.35)
    failed = _asked(bot, SHIPPING[0], status=MessageStatus.FAILED, error_code="llm_unavailable", sources=[])
    _asked(bot, SHIPPING[1], retrieval_score=0.9)  # a good answer
    _asked(bot, "Where is my parcel?", status=MessageStatus.INCOMPLETE, error_code="client_disconnected")
    resolved = _asked(bot, SHIPPING[1], feedback="down")
    review_resolve(organization_id=bot.organization_id, message_ids=[resolved.pk])
    foreign = _asked(make_bot(name="Other"), RETURNS[0], feedback="down")

    page = owner_client.get(QUEUE)
    assert page.status_code == 200
    body = page.content.decode()
    groups = review_queue(Message.objects.filter(organization=owner_client.organization))
    assert [(g.count, set(g.answer_ids)) for g in groups] == [
        (3, {down.pk, fallback.pk, weak.pk}),
        (1, {failed.pk}),
    ]
    assert dict(groups[0].reasons) == {"Thumbs down": 1, "Unanswered": 1, "Weak sources": 1}
    assert dict(groups[1].reasons) == {"Provider failure": 1}
    assert body.index(RETURNS[0]) < body.index(SHIPPING[0])  # the most frequent first
    assert "asked 3 times" in body
    for answer in (down, failed):
        assert f"/admin/chatbots/conversation/{answer.conversation_id}/change/#message-{answer.pk}" in body
        assert f"/admin/chatbots/conversation/{answer.conversation_id}/improve/{answer.pk}/" in body
    assert f"#message-{foreign.pk}" not in body and f"#message-{resolved.pk}" not in body
    assert f"#message-{resolved.pk}" in owner_client.get(QUEUE, {"status": "resolved"}).content.decode()


def test_resolving_a_group_removes_it_and_reopening_brings_it_back(owner_client) -> None:
    bot = make_bot(organization=owner_client.organization)
    first, second = _asked(bot, RETURNS[0], feedback="down"), _asked(bot, RETURNS[1], feedback="down")
    foreign = _asked(make_bot(name="Other"), RETURNS[0], feedback="down")

    response = owner_client.post(RESOLVE, {"answer": [first.pk, second.pk, foreign.pk]})
    assert response.status_code == 302
    assert Message.objects.filter(pk__in=[first.pk, second.pk], reviewed_at=None).count() == 0
    assert Message.objects.get(pk=foreign.pk).reviewed_at is None  # another organization's is untouched
    assert "Nothing needs attention" in owner_client.get(QUEUE).content.decode()

    owner_client.post(RESOLVE, {"answer": [first.pk], "reopen": "1", "from": "resolved"})
    assert Message.objects.get(pk=first.pk).reviewed_at is None
    page = owner_client.get(QUEUE).content.decode()
    assert f"#message-{first.pk}" in page and f"#message-{second.pk}" not in page
    assert "resolve this one" in page  # one answer of a group can be resolved on its own too


def test_members_read_the_queue_but_do_not_resolve(client) -> None:
    organization = make_organization(name="Acme")
    client.force_login(add_member(organization=organization, role=Role.MEMBER))
    answer = _asked(make_bot(organization=organization), RETURNS[0], feedback="down")
    page = client.get(QUEUE).content.decode()
    assert (
        f"#message-{answer.pk}" in page and "Mark resolved" not in page and "Improve this answer" not in page
    )
    assert client.post(RESOLVE, {"answer": [answer.pk]}).status_code == 403
    assert Message.objects.get(pk=answer.pk).reviewed_at is None


def test_improving_an_answer_resolves_it(owner_client) -> None:
    answer = _asked(make_bot(organization=owner_client.organization), RETURNS[0], feedback="down")
    answer_improve(message=answer, question=RETURNS[0], answer="Within 30 days of delivery.")
    assert Message.objects.get(pk=answer.pk).reviewed_at is not None


def test_queue_page_costs_the_same_queries_for_3_or_30_answers(owner_client) -> None:
    bot = make_bot(organization=owner_client.organization)

    def page_queries() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert owner_client.get(QUEUE, {"bot": bot.pk}).status_code == 200
        return len(queries)

    for n in range(3):
        _asked(bot, f"{RETURNS[n % 2]} ({n})", feedback="down")
    page_queries()  # warm up: the session, the organization and the serving model are read once
    few = page_queries()
    for n in range(27):
        _asked(bot, SHIPPING[n % 2], vector=n % 3 != 0, provider="fallback_reply", sources=[])
    assert page_queries() == few
