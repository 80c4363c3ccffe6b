"""The admin home's question panels: the last 30 days' questions grouped by meaning (the review queue's
grouping), the unanswered ones linking to the review queue, as tables screen readers read."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from accounts.models import Role
from accounts.tests.factories import add_member, make_organization
from chatbots.models import Message, MessageRole
from chatbots.tests.factories import make_bot, make_conversation, make_message
from knowledge.embedders import embed_search_query

pytestmark = pytest.mark.django_db

SOURCE = {"source_id": 1, "title": "FAQ", "url": None, "page": None, "snippet": "…"}


def _asked(bot, question: str, *, answered: bool = True) -> Message:
    conversation = make_conversation(bot=bot)
    asked = make_message(
        conversation=conversation, role=MessageRole.USER, text=question,
        question_embedding=embed_search_query(question),
    )  # fmt: skip
    make_message(
        conversation=conversation, role=MessageRole.ASSISTANT, text="…",
        **({"sources": [SOURCE]} if answered else {"provider": "fallback_reply", "sources": []}),
    )  # fmt: skip
    return asked


def test_dashboard_shows_top_and_top_unanswered_questions_grouped_by_meaning(client) -> None:
    organization = make_organization(name="Acme")
    client.force_login(add_member(organization=organization, role=Role.MEMBER))
    bot = make_bot(organization=organization)
    for question in ("How long do I have to return boots?", "how long can I return my boots"):
        _asked(bot, question)
    _asked(bot, "How long do I have to return boots?")
    _asked(bot, "Do you ship to Switzerland?", answered=False)
    _asked(bot, "Do you deliver to Switzerland?", answered=False)
    old = _asked(bot, "What are your opening hours?", answered=False)
    Message.objects.filter(conversation_id=old.conversation_id).update(
        created_at=timezone.now() - dt.timedelta(days=40)
    )
    _asked(make_bot(name="Other"), "Secret foreign question?", answered=False)

    body = client.get("/admin/").content.decode()
    top = body[
        body.index('data-testid="panel-top-questions"') : body.index('data-testid="panel-top-unanswered"')
    ]
    unanswered = body[body.index('data-testid="panel-top-unanswered"') :]
    # Three returns questions counted as one, the two shipping ones as another; in a table (caption, headers).
    assert "<caption" in top and 'scope="row"' in top
    assert top.index("return") < top.index("Switzerland")
    assert '<td class="pr-4 text-right">3</td>' in top and '<td class="pr-4 text-right">2</td>' in top
    assert "Switzerland" in unanswered and "return" not in unanswered
    assert "/admin/chatbots/reviewqueueentry/" in unanswered
    assert "opening hours" not in body  # older than 30 days
    assert "Secret foreign question?" not in body


def test_question_panels_are_grouped_once_a_minute_and_forgotten_when_questions_are_deleted(
    client, settings, django_capture_on_commit_callbacks
) -> None:
    from chatbots.services import conversation_delete

    settings.DASHBOARD_QUESTIONS_CACHE_SECONDS = 60
    organization = make_organization(name="Acme")
    client.force_login(add_member(organization=organization, role=Role.OWNER))
    bot = make_bot(organization=organization)
    first = _asked(bot, "Do you ship to Switzerland?")
    assert "Switzerland" in client.get("/admin/").content.decode()

    _asked(bot, "Can I pay with Twint?")
    assert "Twint" not in client.get("/admin/").content.decode()  # the minute's grouping is reused

    # A deleted conversation (erasure and retention call the same invalidation) is gone at once.
    with django_capture_on_commit_callbacks(execute=True):
        conversation_delete(conversation=first.conversation)
    body = client.get("/admin/").content.decode()
    assert "Switzerland" not in body and "Twint" in body
