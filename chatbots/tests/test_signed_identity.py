"""Signed visitor identity over the real chat socket: a valid user_hash maps the user's conversations, a wrong
one is refused, and a bot that requires signed identities refuses unsigned ones and ignores claimed names."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async

from chatbots.identity import bot_identity_secret_rotate, identity_hash
from chatbots.models import Bot, Conversation, Message
from chatbots.services import bot_update
from chatbots.testing import VISITOR, collect_answer, connect
from chatbots.tests.factories import make_chat_bot

pytestmark = pytest.mark.django_db(transaction=True)


async def _bot(llm_server, **fields: object) -> tuple[Bot, str]:
    bot = await sync_to_async(make_chat_bot)(llm_server, model="fake?reply=Hello.", **fields)
    secret = await sync_to_async(bot_identity_secret_rotate)(bot=bot)
    return bot, secret


def signed(secret: str, user_id: str) -> dict[str, str]:
    return {"user_id": user_id, "user_hash": identity_hash(secret=secret, user_id=user_id)}


async def _chat(ws, text: str, attributes: dict | None = None) -> dict:
    frame = {"type": "message", "text": text, **({"attributes": attributes} if attributes else {})}
    await ws.send_json_to(frame)
    return await collect_answer(ws)


async def test_verified_user_chats_as_themselves_and_resumes_on_another_device(llm_server) -> None:
    bot, secret = await _bot(llm_server)
    ws = await connect(bot, visitor="browser-one-000001", identity=signed(secret, "42"))
    ready = await ws.receive_json_from()
    assert ready["identified"] is True
    answer = await _chat(ws, "Where is my order?", {"email": "ada@example.com", "name": "Ada", "plan": "pro"})
    await ws.disconnect(timeout=15)
    conversation = await Conversation.objects.aget(pk=answer["done"]["conversation_id"])
    assert conversation.visitor_id == "user:42"
    assert conversation.visitor_attributes == {
        "email": "ada@example.com", "name": "Ada", "plan": "pro", "user_id": "42", "identity_verified": True,
    }  # fmt: skip

    # The same user on another device (another anonymous visitor id) continues that conversation…
    ws = await connect(
        bot, visitor="browser-two-000002", conversation=str(conversation.pk), identity=signed(secret, "42")
    )
    assert (await ws.receive_json_from())["conversation_id"] == str(conversation.pk)
    await ws.disconnect(timeout=15)
    # …another user cannot, nor an anonymous visitor who picks the user's visitor id.
    for kwargs in (
        {"visitor": "browser-three-0003", "identity": signed(secret, "43")},
        {"visitor": "user:42"},
    ):
        ws = await connect(bot, conversation=str(conversation.pk), **kwargs)
        refused = await ws.receive_json_from()
        assert refused["code"] == "conversation_not_found", kwargs
        await ws.disconnect(timeout=15)
    assert await Message.objects.filter(conversation=conversation).acount() == 2


async def test_wrong_hash_is_refused_and_nothing_is_stored(llm_server) -> None:
    bot, secret = await _bot(llm_server)
    wrong = {"user_id": "42", "user_hash": identity_hash(secret=secret, user_id="43")}
    for identity in (
        wrong,
        {"user_id": "42", "user_hash": "not-hex"},
        {"user_id": "42", "user_hash": "0" * 64},
    ):
        ws = await connect(bot, identity=identity)
        error = await ws.receive_json_from()
        assert error["type"] == "error" and error["code"] == "identity_invalid", identity
        assert "user_hash" in error["message"]
        assert (await ws.receive_output(timeout=5))["type"] == "websocket.close"
    # A secret rotated away: hashes made with the old one stop working.
    await sync_to_async(bot_identity_secret_rotate)(bot=bot)
    ws = await connect(bot, identity=signed(secret, "42"))
    assert (await ws.receive_json_from())["code"] == "identity_invalid"
    await ws.disconnect(timeout=15)
    assert await Conversation.objects.filter(bot=bot).acount() == 0


async def test_required_identity_refuses_unsigned_calls_and_ignores_claimed_names(llm_server) -> None:
    bot, _ = await _bot(llm_server)
    await sync_to_async(bot_update)(bot=bot, data={"identity_required": True})
    ws = await connect(bot, identity={"user_id": "42"})
    error = await ws.receive_json_from()
    assert error["code"] == "identity_invalid" and "signed identity" in error["message"]
    await ws.disconnect(timeout=15)

    # Anonymous visitors still chat, but cannot claim to be someone.
    ws = await connect(bot)
    assert (await ws.receive_json_from())["identified"] is False
    answer = await _chat(
        ws, "Hi", {"email": "ceo@example.com", "name": "The CEO", "identity_verified": True, "plan": "x"}
    )
    await ws.disconnect(timeout=15)
    conversation = await Conversation.objects.aget(pk=answer["done"]["conversation_id"])
    assert conversation.visitor_attributes == {"plan": "x"} and conversation.visitor_id == VISITOR


async def test_identifying_mid_conversation_makes_the_anonymous_conversation_the_users(llm_server) -> None:
    bot, secret = await _bot(llm_server)
    ws = await connect(bot)
    await ws.receive_json_from()
    answer = await _chat(ws, "Hello before signing in")
    await ws.disconnect(timeout=15)
    conversation_id = answer["done"]["conversation_id"]
    # The page signs the visitor in: the widget reconnects with the identity and the same conversation.
    ws = await connect(bot, conversation=conversation_id, identity=signed(secret, "7"))
    ready = await ws.receive_json_from()
    await ws.disconnect(timeout=15)
    assert ready["conversation_id"] == conversation_id and ready["identified"] is True
    conversation = await Conversation.objects.aget(pk=conversation_id)
    assert (
        conversation.visitor_id == "user:7" and conversation.visitor_attributes["identity_verified"] is True
    )
