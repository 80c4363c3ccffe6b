"""The conversation inbox: conversations listed like a support inbox, filtered and searched, and a
transcript read as a chat."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.models import Role
from accounts.tests.factories import add_member, make_organization
from chatbots.models import Channel, Conversation, MessageRole, MessageStatus
from chatbots.selectors import conversations_for_inbox, conversations_search
from chatbots.tests.factories import make_bot, make_conversation, make_message

pytestmark = pytest.mark.django_db

INBOX = "/admin/chatbots/conversation/"
SOURCE = {
    "source_id": 1,
    "title": "Shipping FAQ",
    "url": None,
    "page": None,
    "snippet": "Parcels ship daily.",
}


def _exchange(bot, *, question: str, answer: str = "It ships tomorrow.", **answer_fields) -> Conversation:
    conversation = make_conversation(bot=bot, visitor_id=f"visitor-{question[:8]}")
    make_message(conversation=conversation, role=MessageRole.USER, text=question)
    answer_fields.setdefault("sources", [SOURCE])
    make_message(conversation=conversation, role=MessageRole.ASSISTANT, text=answer, **answer_fields)
    return conversation


def _results(client, **params) -> list[Conversation]:
    response = client.get(INBOX, params)
    assert response.status_code == 200
    return list(response.context["cl"].result_list)


@pytest.fixture
def member_client(client):
    organization = make_organization(name="Acme")
    client.force_login(add_member(organization=organization, role=Role.MEMBER))
    client.organization = organization
    return client


def test_inbox_titles_conversations_by_their_first_question_with_visitor_and_badges(member_client) -> None:
    bot = make_bot(organization=member_client.organization, name="Helper")
    conversation = _exchange(bot, question="Where is my parcel?", feedback="down")
    make_message(conversation=conversation, role=MessageRole.USER, text="Hello again?")
    Conversation.objects.filter(pk=conversation.pk).update(visitor_attributes={"email": "ann@example.com"})
    _exchange(bot, question="Do you sell tents?", answer="Sorry, I don't know.", provider="fallback_reply",
              sources=[])  # fmt: skip

    body = member_client.get(INBOX).content.decode()
    assert "Where is my parcel?" in body and "Do you sell tents?" in body
    assert "Hello again?" not in body  # only the first question is the title
    assert "ann@example.com" in body and "Visitor " in body
    assert "Thumbs down" in body and "Unanswered" in body

    row = conversations_for_inbox(Conversation.objects.filter(pk=conversation.pk)).get()
    assert (row.first_question, row.message_count, row.has_thumbs_down, row.has_unanswered, row.has_failure) == (
        "Where is my parcel?", 3, True, False, False,
    )  # fmt: skip


def test_anonymous_visitor_label_is_stable_and_hides_the_visitor_id() -> None:
    bot = make_bot()
    first = make_conversation(bot=bot, visitor_id="v-123456")
    second = make_conversation(bot=bot, visitor_id="v-123456")
    named = make_conversation(bot=bot, visitor_id="v-9", visitor_attributes={"name": " Ann Smith "})
    assert first.visitor_label == second.visitor_label
    assert first.visitor_label.startswith("Visitor ") and "123456" not in first.visitor_label
    assert named.visitor_label == "Ann Smith"


def test_inbox_filters_by_feedback_unanswered_failure_bot_channel_and_date(member_client) -> None:
    organization = member_client.organization
    helper, sales = (
        make_bot(organization=organization, name="Helper"),
        make_bot(organization=organization, name="Sales"),
    )
    down = _exchange(helper, question="Parcel late?", feedback="down", feedback_comment="Wrong date")
    up = _exchange(helper, question="Returns?", feedback="up")
    fallback = _exchange(helper, question="Tents?", provider="fallback_reply", sources=[])
    failed = _exchange(sales, question="Prices?", status=MessageStatus.FAILED, error_code="provider_error")
    interrupted = _exchange(sales, question="Sizes?", status=MessageStatus.INCOMPLETE)
    old = _exchange(sales, question="Old question?")
    Conversation.objects.filter(pk=old.pk).update(
        channel=Channel.API, last_message_at=timezone.now() - dt.timedelta(days=40)
    )

    assert _results(member_client, feedback="down") == [down]
    assert set(_results(member_client, feedback="any")) == {down, up}
    assert _results(member_client, unanswered="yes") == [fallback]
    assert set(_results(member_client, failed="yes")) == {failed, interrupted}
    assert set(_results(member_client, bot__id__exact=sales.pk)) == {failed, interrupted, old}
    assert _results(member_client, channel__exact=Channel.API) == [old]
    since = (timezone.now() - dt.timedelta(days=7)).date().isoformat()
    assert old not in _results(member_client, last_message_at_from=since)
    assert len(_results(member_client, last_message_at_from=since)) == 5


def test_inbox_filters_by_the_visitors_language_offering_only_the_organizations_languages(
    member_client,
) -> None:
    bot = make_bot(organization=member_client.organization)
    german = _exchange(bot, question="Wo ist mein Paket?")
    french = _exchange(bot, question="Où est mon colis ?")
    unknown = _exchange(bot, question="Parcel?")
    Conversation.objects.filter(pk=german.pk).update(language="de")
    Conversation.objects.filter(pk=french.pk).update(language="fr")
    foreign = _exchange(make_bot(name="Other"), question="Dove è il mio pacco?")
    Conversation.objects.filter(pk=foreign.pk).update(language="it")

    assert _results(member_client, language="de") == [german]
    assert _results(member_client, language="fr") == [french]
    assert set(_results(member_client)) == {german, french, unknown}
    body = member_client.get(INBOX).content.decode()
    assert "German (de)" in body and "French (fr)" in body
    assert "Italian" not in body  # another organization's languages are not offered


def test_search_is_full_text_over_every_message_of_the_organization_only(member_client) -> None:
    bot = make_bot(organization=member_client.organization)
    parcel = _exchange(bot, question="Where is my parcel?", answer="Ask DHL about tracking number 42.")
    _exchange(bot, question="Do you sell tents?")
    umlaut = _exchange(bot, question="Wo ist mein Päckchen?")
    foreign = _exchange(make_bot(name="Other"), question="Where is my parcel?")  # another organization

    assert _results(member_client, q="parcel") == [parcel]
    assert _results(member_client, q="tracking dhl") == [parcel]  # words of an answer, any case
    assert _results(member_client, q='"tracking number"') == [parcel]
    assert _results(member_client, q="päckchen") == [umlaut]  # words as written, in any language
    assert _results(member_client, q="umbrella") == []
    assert _results(member_client, q=parcel.visitor_id) == [parcel]
    assert foreign in conversations_search(Conversation.objects.all(), text="parcel")


def test_search_uses_the_conversations_gin_index() -> None:
    queryset = conversations_search(Conversation.objects.order_by(), text="parcel")
    with connection.cursor() as cursor:
        # an empty table: leave the planner only the lookups (no scan in another index's order)
        cursor.execute("SET LOCAL enable_seqscan = off; SET LOCAL enable_indexscan = off")
        plan = queryset.explain()
    assert "conversation_search" in plan


def test_inbox_page_costs_the_same_queries_for_3_or_30_conversations(member_client) -> None:
    bot = make_bot(organization=member_client.organization)

    def page_queries() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert (
                member_client.get(INBOX, {"feedback": "down", "q": "parcel", "language": "de"}).status_code
                == 200
            )
        return len(queries)

    for n in range(3):
        _exchange(bot, question=f"Where is parcel {n}?", feedback="down")
    Conversation.objects.update(language="de")
    page_queries()  # warm up: the session and the organization are read once per client
    few = page_queries()
    for n in range(27):
        _exchange(bot, question=f"Where is parcel {n + 3}?", feedback="down",
                  status=MessageStatus.INCOMPLETE if n % 2 else MessageStatus.COMPLETE)  # fmt: skip
    Conversation.objects.update(language="de")
    assert page_queries() == few
    assert len(_results(member_client, feedback="down", q="parcel", language="de")) == 30


def test_inbox_is_paginated(member_client) -> None:
    bot = make_bot(organization=member_client.organization)
    for n in range(55):
        _exchange(bot, question=f"Question {n}?")
    first = member_client.get(INBOX).context["cl"]
    assert first.result_count == 55 and len(first.result_list) == 50
    assert len(member_client.get(INBOX, {"p": 2}).context["cl"].result_list) == 5


def test_inbox_counts_only_up_to_the_limit_and_says_there_are_more(member_client, settings) -> None:
    bot = make_bot(organization=member_client.organization)
    for n in range(7):
        _exchange(bot, question=f"Question {n}?", feedback="down" if n < 2 else "")
    settings.INBOX_COUNT_LIMIT = 5

    page = member_client.get(INBOX)
    cl = page.context["cl"]
    assert cl.result_count == 5 and cl.result_count_bounded and len(cl.result_list) == 7
    assert "More than 5 conversations match" in page.content.decode()

    narrowed = member_client.get(INBOX, {"feedback": "down"})  # under the limit: the exact count
    assert narrowed.context["cl"].result_count == 2 and not narrowed.context["cl"].result_count_bounded
    assert "More than" not in narrowed.content.decode()


def test_inbox_counts_the_filtered_conversations_once(member_client) -> None:
    bot = make_bot(organization=member_client.organization)
    _exchange(bot, question="Where is my parcel?", feedback="down")
    member_client.get(INBOX)  # warm up: the session and the organization are read once per client
    with CaptureQueriesContext(connection) as queries:
        assert member_client.get(INBOX, {"feedback": "down"}).status_code == 200
    counts = [q["sql"] for q in queries if q["sql"].startswith("SELECT COUNT(*)")]
    assert len(counts) == 1  # no second count of the organization's whole inbox


def test_search_of_one_organization_ignores_the_messages_of_others(member_client) -> None:
    ours = _exchange(make_bot(organization=member_client.organization), question="Where is my parcel?")
    theirs = _exchange(make_bot(name="Other"), question="Where is my parcel?")

    scoped = conversations_search(
        Conversation.objects.all(), text="parcel", organization_id=member_client.organization.pk
    )
    assert list(scoped) == [ours]
    assert set(conversations_search(Conversation.objects.all(), text="parcel")) == {ours, theirs}


def test_transcript_reads_as_a_chat_with_sources_usage_feedback_and_visitor(member_client) -> None:
    bot = make_bot(organization=member_client.organization, name="Helper")
    conversation = _exchange(
        bot, question="Where is my parcel?", model="gpt-test", provider="openai", prompt_tokens=120,
        completion_tokens=30, cost_usd="0.000450", first_token_ms=310, latency_ms=900, feedback="down",
        feedback_comment="It never arrived",
    )  # fmt: skip
    Conversation.objects.filter(pk=conversation.pk).update(
        visitor_attributes={"name": "Ann", "plan": "<b>pro</b>"}
    )
    page = member_client.get(f"{INBOX}{conversation.pk}/change/")
    body = page.content.decode()
    assert page.status_code == 200
    assert "data-transcript" in body and 'class="pt-row pt-user"' in body
    for expected in ("Where is my parcel?", "It ships tomorrow.", "Shipping FAQ", "Parcels ship daily.",
                     "/admin/knowledge/source/1/change/", "gpt-test", "120 + 30 tokens", "$0.000450",
                     "first token 310 ms", "Thumbs down", "It never arrived", "Ann", "plan"):  # fmt: skip
        assert expected in body, expected
    assert "<b>pro</b>" not in body and "&lt;b&gt;pro&lt;/b&gt;" in body


def test_another_organizations_transcript_is_not_found(member_client) -> None:
    foreign = _exchange(make_bot(name="Other"), question="Secret question?")
    response = member_client.get(f"{INBOX}{foreign.pk}/change/")
    assert response.status_code == 404
    assert "Secret question?" not in response.content.decode()


def test_inbox_page_with_every_badge_filter_costs_the_same_queries_for_3_or_30_conversations(
    member_client,
) -> None:
    bot = make_bot(organization=member_client.organization)
    filters = {"feedback": "down", "unanswered": "yes", "failed": "yes"}

    def flagged(n: int) -> None:
        conversation = _exchange(bot, question=f"Where is parcel {n}?", feedback="down", sources=[])
        make_message(
            conversation=conversation, role=MessageRole.ASSISTANT, text="", status=MessageStatus.FAILED
        )

    def page_queries() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert member_client.get(INBOX, filters).status_code == 200
        return len(queries)

    for n in range(3):
        flagged(n)
    _exchange(bot, question="Not flagged at all")
    page_queries()  # warm up: the session and the organization are read once per client
    few = page_queries()
    for n in range(27):
        flagged(n + 3)
    assert page_queries() == few
    assert len(_results(member_client, **filters)) == 30


def test_inbox_rows_have_the_markup_unfold_gives_a_result_list(member_client) -> None:
    from unfold.templatetags.unfold_list import items_for_result, result_headers  # the reference

    bot = make_bot(organization=member_client.organization, name="Helper")
    _exchange(bot, question="Where is my <parcel>?", feedback="down")
    _exchange(bot, question="Do you sell tents?", provider="fallback_reply", sources=[])
    # an owner: the rows have the checkbox of the delete action too
    member_client.force_login(add_member(organization=member_client.organization, role=Role.OWNER))

    cl = member_client.get(INBOX, {"feedback": "down"}).context["cl"]
    headers = list(result_headers(cl))
    ours = cl.model_admin.inbox_rows(cl, headers)
    unfolds = ["".join(items_for_result(cl, obj, None)) for obj in cl.result_list]

    def normalized(html: str) -> str:
        return " ".join(html.replace('" >', '">').split())

    assert [normalized(row) for row in ours] == [normalized(row) for row in unfolds]
    assert "&lt;parcel&gt;" in ours[0] and "action-select" in ours[0]  # escaped text; the checkbox
