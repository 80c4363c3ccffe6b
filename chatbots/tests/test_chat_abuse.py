"""What a hostile client tries on the public chat: reading a conversation by its id alone, and flooding a
bot by rotating visitor ids. Real consumer, pipeline, database and Redis."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator

from chatbots.models import Conversation, Message, MessageRole, MessageStatus
from chatbots.testing import VISITOR, collect_answer, connect
from chatbots.tests.factories import make_chat_bot
from config.asgi import application
from config.client_ip import client_ip

pytestmark = pytest.mark.django_db(transaction=True)


async def _started_conversation(bot) -> str:
    ws = await connect(bot)
    await ws.receive_json_from()
    await ws.send_json_to({"type": "message", "text": "My order number is 4711."})
    answer = await collect_answer(ws)
    await ws.disconnect(timeout=15)
    return answer["done"]["conversation_id"]


@pytest.mark.parametrize("visitor", ["", "not a visitor id!", "someone-else-0123"])
async def test_conversation_id_alone_neither_reads_nor_continues_it(llm_server, visitor) -> None:
    bot = await sync_to_async(make_chat_bot)(llm_server, model="fake")
    conversation_id = await _started_conversation(bot)
    before = await Message.objects.filter(conversation_id=conversation_id).acount()

    ws = await connect(bot, visitor=visitor, conversation=conversation_id)
    refused = await ws.receive_json_from()
    assert refused == {"type": "error", "code": "conversation_not_found", "message": refused["message"]}
    assert (await ws.receive_output(timeout=5))["type"] == "websocket.close"

    assert await Message.objects.filter(conversation_id=conversation_id).acount() == before
    ws = await connect(bot, visitor=VISITOR, conversation=conversation_id)  # its visitor still may
    assert (await ws.receive_json_from())["conversation_id"] == conversation_id
    await ws.disconnect(timeout=15)


def _from_address(bot, address: str, visitor: str) -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(
        application, f"/ws/chat/{bot.public_id}/?visitor={visitor}", headers=[(b"host", b"localhost")]
    )
    # The application coroutine has not run yet: it starts with this peer address in its scope.
    communicator.scope["client"] = [address, 40000]
    return communicator


async def _send_one(bot, address: str, visitor: str) -> dict:
    ws = _from_address(bot, address, visitor)
    assert (await ws.connect())[0]
    await ws.receive_json_from()
    await ws.send_json_to({"type": "message", "text": f"Hello from {visitor}"})
    answer = await collect_answer(ws)
    await ws.disconnect(timeout=15)
    return answer


async def test_rotating_visitor_ids_does_not_escape_the_address_limit(llm_server, settings) -> None:
    settings.CHAT_RATE_LIMIT_VISITOR = "20/min"
    settings.CHAT_RATE_LIMIT_IP = "3/min"
    bot = await sync_to_async(make_chat_bot)(llm_server, model="fake")
    answers = [await _send_one(bot, "198.51.100.7", f"rotating-{n:04d}") for n in range(6)]
    assert [a["done"] is not None for a in answers] == [True] * 3 + [False] * 3
    assert {a["errors"][0]["code"] for a in answers[3:]} == {"rate_limited"}
    # Another address is not affected.
    assert (await _send_one(bot, "198.51.100.8", "rotating-9999"))["done"] is not None


async def test_a_flood_is_counted_not_stored_and_leaves_the_bot_to_everyone_else(
    llm_server, settings
) -> None:
    settings.CHAT_RATE_LIMIT_IP = "2/min"
    settings.CHAT_RATE_LIMIT_BOT = "6/min"
    bot = await sync_to_async(make_chat_bot)(llm_server, model="fake")
    flood = [await _send_one(bot, "203.0.113.66", f"flood-{n:04d}") for n in range(12)]
    assert sum(a["done"] is not None for a in flood) == 2
    # Only the first refused message of the window is kept in a transcript; all ten are counted.
    refused = Message.objects.filter(
        conversation__bot=bot, role=MessageRole.USER, status=MessageStatus.FAILED, error_code="rate_limited"
    )
    assert await refused.acount() == 1
    # The flood's refused messages did not use up the bot's limit: four other visitors still get answers.
    others = [await _send_one(bot, f"192.0.2.{n}", f"visitor-{n:04d}") for n in range(1, 5)]
    assert all(a["done"] is not None for a in others)
    assert await Conversation.objects.filter(bot=bot).acount() == 2 + 1 + 4


@pytest.mark.parametrize(
    ("trusted", "peer", "forwarded", "expected"),
    [
        ([], "10.0.0.5", "203.0.113.9", "10.0.0.5"),  # no trusted proxy: the header is ignored
        (["10.0.0.0/8"], "198.51.100.1", "203.0.113.9", "198.51.100.1"),  # peer is not our proxy
        (["10.0.0.0/8"], "10.0.0.5", "203.0.113.9", "203.0.113.9"),
        (["10.0.0.0/8"], "10.0.0.5", "1.2.3.4, 203.0.113.9, 10.0.0.7", "203.0.113.9"),  # spoofed left part
        (["10.0.0.0/8"], "10.0.0.5", None, "10.0.0.5"),
        (["10.0.0.0/8", "::1"], "::1", "2001:db8::1", "2001:db8::1"),
    ],
)
def test_client_address_believes_only_trusted_proxies(settings, trusted, peer, forwarded, expected) -> None:
    settings.TRUSTED_PROXIES = trusted
    assert client_ip(peer, forwarded) == expected
