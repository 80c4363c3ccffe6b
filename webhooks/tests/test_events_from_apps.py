"""The events chatbots and knowledge report (docs/webhooks.md): stored in the transaction of the change,
with the payloads documented, only for organizations whose endpoints subscribe to them."""

from __future__ import annotations

import pytest
from django.db import transaction

from accounts.tests.factories import make_organization, owner_of
from chatbots.handoff import HandoffReason, handoff_request, handoff_take, operator_message_send
from chatbots.leads import CONSENT_DEFAULTS, lead_create
from chatbots.models import LeadReason, MessageRole
from chatbots.services import (
    AnswerRecord,
    assistant_message_create,
    message_feedback_set,
    user_message_create,
)
from chatbots.tests.factories import make_bot, make_conversation
from chatbots.webhook_events import message_author
from knowledge.models import SourceKind
from knowledge.services import source_create, source_fail, source_ingest
from webhooks.models import EventType, WebhookDelivery, WebhookEvent
from webhooks.tests.factories import make_endpoint

pytestmark = pytest.mark.django_db


def _events(organization) -> dict[str, list[dict]]:
    found: dict[str, list[dict]] = {}
    for event in WebhookEvent.objects.filter(organization=organization).order_by("created_at", "pk"):
        found.setdefault(event.type, []).append(event.data)
    return found


def test_a_chat_reports_its_start_each_message_with_its_author_and_feedback():
    bot = make_bot(name="Shop helper")
    make_endpoint(organization=bot.organization, url="https://hooks.example.com/parlor")
    recorded = user_message_create(
        bot=bot, conversation_id=None, channel="widget", visitor_id="visitor-123",
        visitor_attributes={"email": "ann@example.com"}, text="Where is my order?",
    )  # fmt: skip
    conversation = recorded.message.conversation
    answer = assistant_message_create(
        conversation_id=conversation.pk, organization_id=bot.organization_id,
        record=AnswerRecord(text="It ships tomorrow.", model="extractive"),
    )  # fmt: skip
    message_feedback_set(conversation=conversation, message_id=answer.pk, value="down", comment="too vague")

    events = _events(bot.organization)
    assert set(events) == {"conversation.started", "message.created", "feedback.created"}
    started = events["conversation.started"][0]["conversation"]
    assert started["id"] == str(conversation.pk) and started["bot"] == {
        "id": bot.public_id,
        "name": "Shop helper",
    }
    assert started["visitor_id"] == "visitor-123" and started["visitor"] == "ann@example.com"
    visitor, bot_reply = events["message.created"]
    assert (visitor["message"]["author"], visitor["message"]["text"]) == ("visitor", "Where is my order?")
    assert (bot_reply["message"]["author"], bot_reply["message"]["text"]) == ("bot", "It ships tomorrow.")
    feedback = events["feedback.created"][0]
    assert feedback["feedback"]["value"] == "down" and feedback["feedback"]["comment"] == "too vague"
    assert feedback["message"]["id"] == answer.pk
    # Every event names the visitor, so their erasure takes the events with their messages.
    assert set(WebhookEvent.objects.values_list("visitor_id", flat=True)) == {"visitor-123"}
    assert WebhookDelivery.objects.count() == 4


def test_a_message_author_follows_its_role_also_for_roles_added_later():
    assert message_author(MessageRole.USER) == "visitor"
    assert message_author(MessageRole.ASSISTANT) == "bot"
    assert message_author("operator") == "operator"


def test_only_subscribed_events_of_enabled_endpoints_are_stored():
    bot = make_bot()
    make_endpoint(
        organization=bot.organization, url="https://hooks.example.com/a", events=[EventType.FEEDBACK_CREATED]
    )
    make_endpoint(organization=bot.organization, url="https://hooks.example.com/b", enabled=False)
    quiet = make_bot(organization=make_organization())  # no endpoints at all
    for each in (bot, quiet):
        user_message_create(
            bot=each, conversation_id=None, channel="api", visitor_id="v", visitor_attributes=None, text="Hi"
        )
    assert not WebhookEvent.objects.exists()


def test_a_rolled_back_change_reports_nothing(django_capture_on_commit_callbacks):
    bot = make_bot()
    make_endpoint(organization=bot.organization, url="https://hooks.example.com/parlor")
    with django_capture_on_commit_callbacks() as queued, pytest.raises(RuntimeError), transaction.atomic():
        user_message_create(
            bot=bot, conversation_id=None, channel="api", visitor_id="v", visitor_attributes=None, text="Hi"
        )  # fmt: skip
        raise RuntimeError("the request failed after the message was stored")
    assert not WebhookEvent.objects.exists() and queued == []


def test_knowledge_sources_report_ready_and_failed():
    organization = make_organization()
    make_endpoint(
        organization=organization, url="https://hooks.example.com/parlor",
        events=[EventType.SOURCE_READY, EventType.SOURCE_FAILED],
    )  # fmt: skip
    source = source_create(
        organization=organization,
        kind=SourceKind.TEXT,
        title="Returns",
        text="Boots can be returned in 30 days.",
    )
    source_ingest(source_id=source.pk)
    source_fail(source_id=source.pk, reason="The page answered 404.")
    events = _events(organization)
    ready, failed = events["source.ready"][0]["source"], events["source.failed"][0]["source"]
    assert ready["id"] == source.pk and ready["status"] == "ready" and ready["chunk_count"] >= 1
    assert failed["status"] == "failed" and failed["status_reason"] == "The page answered 404."


def test_a_handoff_reports_its_request_its_operator_and_the_operators_reply_and_a_lead_is_reported():
    bot = make_bot(name="Shop helper", handoff_enabled=True)
    make_endpoint(organization=bot.organization, url="https://hooks.example.com/parlor")
    conversation = make_conversation(bot=bot, visitor_id="visitor-77")
    operator = owner_of(bot.organization)
    operator.full_name = "Anna Berg"
    operator.save()

    handoff_request(conversation=conversation, reason=HandoffReason.VISITOR)
    handoff_request(conversation=conversation, reason=HandoffReason.VISITOR)  # already waiting: no event
    handoff_take(conversation=conversation, operator=operator)
    operator_message_send(conversation=conversation, operator=operator, text="Hi, Anna here.")
    lead_create(
        bot=bot, email="ada@example.com", name="Ada", message="Do you ship to Mars?",
        reason=LeadReason.NOBODY_AVAILABLE, consent_given=True, consent_text=CONSENT_DEFAULTS["en"],
        visitor_id="visitor-77", conversation=conversation,
    )  # fmt: skip

    events = _events(bot.organization)
    [requested] = events["handoff.requested"]
    assert requested["conversation"]["id"] == str(conversation.pk)
    assert requested["handoff"]["status"] == "waiting" and requested["handoff"]["reason"] == "visitor"
    [taken] = events["handoff.taken"]
    assert taken["handoff"]["status"] == "taken" and taken["handoff"]["operator"]["name"] == "Anna Berg"
    [reply] = events["message.created"]
    assert (reply["message"]["author"], reply["message"]["text"]) == ("operator", "Hi, Anna here.")
    [lead] = events["lead.created"]
    assert lead["lead"]["email"] == "ada@example.com" and lead["lead"]["reason"] == "nobody_available"
    assert lead["conversation"]["id"] == str(conversation.pk)
    assert set(
        WebhookEvent.objects.filter(organization=bot.organization).values_list("visitor_id", flat=True)
    ) == {"visitor-77"}
