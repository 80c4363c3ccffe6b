"""The widget's lead form over the real chat socket: validated, rate-limited, stored with the consent given,
and the visitor named in the conversation the inbox shows."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async

from chatbots.leads import CONSENT_DEFAULTS
from chatbots.models import Conversation, Lead, LeadReason
from chatbots.testing import VISITOR, collect_answer, connect
from chatbots.tests.factories import make_bot, make_chat_bot

pytestmark = pytest.mark.django_db(transaction=True)


def lead_frame(**fields: object) -> dict:
    return {
        "type": "lead", "name": "Ada Lovelace", "email": "ada@example.com", "reason": "before_chat",
        "consent": True, "consent_text": CONSENT_DEFAULTS["en"], **fields,
    }  # fmt: skip


async def test_lead_before_chatting_is_stored_and_names_the_visitor_of_the_conversation(llm_server) -> None:
    bot = await sync_to_async(make_chat_bot)(llm_server, model="fake?reply=Hello+Ada.", lead_capture="before")
    ws = await connect(bot)
    ready = await ws.receive_json_from()
    assert ready["bot"]["lead_form"]["mode"] == "before"
    assert ready["bot"]["lead_form"]["consent"]["de"] == CONSENT_DEFAULTS["de"]
    await ws.send_json_to(lead_frame())
    assert (await ws.receive_json_from())["type"] == "lead_saved"
    await ws.send_json_to({"type": "message", "text": "Do you ship boots?"})
    answer = await collect_answer(ws)
    await ws.disconnect(timeout=15)

    lead = await Lead.objects.aget(bot=bot)
    assert (lead.name, lead.email, lead.reason, lead.visitor_id) == (
        "Ada Lovelace", "ada@example.com", LeadReason.BEFORE_CHAT, VISITOR,
    )  # fmt: skip
    assert lead.consent_given and lead.consent_at is not None and lead.consent_text == CONSENT_DEFAULTS["en"]
    assert lead.organization_id == bot.organization_id
    # The lead joined the conversation the first message started, and the inbox names the visitor.
    conversation = await Conversation.objects.aget(pk=answer["done"]["conversation_id"])
    assert lead.conversation_id == conversation.pk
    assert conversation.visitor_attributes["email"] == "ada@example.com"
    assert conversation.visitor_label == "Ada Lovelace"


async def test_lead_in_a_conversation_updates_its_visitor_attributes(llm_server) -> None:
    bot = await sync_to_async(make_chat_bot)(llm_server, model="fake?reply=Sure.")
    ws = await connect(bot)
    await ws.receive_json_from()
    await ws.send_json_to({"type": "message", "text": "Can someone call me back?"})
    answer = await collect_answer(ws)
    await ws.send_json_to(lead_frame(name="", reason="nobody_available", message="Please call me back."))
    saved = await ws.receive_json_from()
    await ws.disconnect(timeout=15)
    assert saved == {"type": "lead_saved", "conversation_id": answer["done"]["conversation_id"]}
    conversation = await Conversation.objects.aget(pk=answer["done"]["conversation_id"])
    assert conversation.visitor_label == "ada@example.com"
    lead = await Lead.objects.aget(conversation=conversation)
    assert lead.message == "Please call me back." and lead.reason == LeadReason.NOBODY_AVAILABLE


INVALID_LEADS = [
    ({"email": "not-an-address"}, "valid e-mail"),
    ({"email": None}, "valid e-mail"),
    ({"consent": False}, "agree"),
    ({"consent": "yes"}, "agree"),
    ({"consent_text": "I agree to anything you like."}, "consent text"),
    ({"reason": "sales"}, "reason"),
    ({"name": "x" * 121}, "too long"),
    ({"name": ["Ada"]}, "must be text"),
]


async def test_invalid_lead_is_refused_with_a_clear_error_and_not_stored(settings) -> None:
    settings.LEAD_RATE_LIMIT_VISITOR = "50/h"  # every attempt counts against the limit, invalid ones too
    bot = await sync_to_async(make_bot)()  # no model needed: the form never reaches the pipeline
    ws = await connect(bot)
    await ws.receive_json_from()
    for fields, message_part in INVALID_LEADS:
        await ws.send_json_to(lead_frame(**fields))
        error = await ws.receive_json_from()
        assert error["type"] == "error" and error["code"] == "invalid_lead", fields
        assert message_part in error["message"], (fields, error["message"])
    await ws.disconnect(timeout=15)
    assert await Lead.objects.acount() == 0


async def test_bot_consent_text_is_the_only_one_accepted_when_set() -> None:
    own = "Acme may e-mail me about my question. Privacy policy: acme.example/privacy"
    bot = await sync_to_async(make_bot)(lead_consent_text=own)
    ws = await connect(bot)
    ready = await ws.receive_json_from()
    assert set(ready["bot"]["lead_form"]["consent"].values()) == {own}
    await ws.send_json_to(lead_frame())  # the default text: not what this bot shows
    assert (await ws.receive_json_from())["code"] == "invalid_lead"
    await ws.send_json_to(lead_frame(consent_text=own))
    assert (await ws.receive_json_from())["type"] == "lead_saved"
    await ws.disconnect(timeout=15)
    assert [lead.consent_text async for lead in Lead.objects.all()] == [own]


async def test_lead_form_is_rate_limited_per_visitor(settings) -> None:
    settings.LEAD_RATE_LIMIT_VISITOR = "2/h"  # a fixed window of an hour: no window edge within the test
    bot = await sync_to_async(make_bot)()
    ws = await connect(bot)
    await ws.receive_json_from()
    replies = []
    for n in range(3):
        await ws.send_json_to(lead_frame(email=f"ada{n}@example.com"))
        replies.append(await ws.receive_json_from())
    await ws.disconnect(timeout=15)
    assert [r["type"] for r in replies[:2]] == ["lead_saved", "lead_saved"]
    assert replies[2]["code"] == "rate_limited" and replies[2]["retry_after"] >= 1
    assert await Lead.objects.acount() == 2
    # Another visitor is not affected by the first one's limit.
    other = await connect(bot, visitor="visitor-other-0001")
    await other.receive_json_from()
    await other.send_json_to(lead_frame(email="grace@example.com"))
    assert (await other.receive_json_from())["type"] == "lead_saved"
    await other.disconnect(timeout=15)
