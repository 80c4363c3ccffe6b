"""Human handoff over the real sockets: the visitor's chat socket and the operators' admin socket
(ws/admin/inbox/), the real pipeline, Redis channel layer and database. Authentication by the admin
session, tenant isolation (an operator of another organization hears nothing and changes nothing), and
the escalation settings."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.test import Client

from accounts.tests.factories import make_organization, make_user, owner_of
from chatbots.models import Conversation, HandoffStatus, Message, MessageRole
from chatbots.testing import connect
from chatbots.tests.factories import make_bot
from config.asgi import application

pytestmark = pytest.mark.django_db(transaction=True)


def _session_cookie(user) -> str:
    client = Client()
    client.force_login(user)
    return client.cookies["sessionid"].value


async def operator_socket(user=None, *, origin: str = "http://testserver", cookie: str | None = None):
    """The admin's socket as a signed-in member's browser opens it; returns (communicator, ready frame)."""
    if user is not None:
        cookie = await sync_to_async(_session_cookie)(user)
    headers = [(b"host", b"testserver"), (b"origin", origin.encode())]
    if cookie:
        headers.append((b"cookie", f"sessionid={cookie}".encode()))
    communicator = WebsocketCommunicator(application, "/ws/admin/inbox/", headers=headers)
    connected, code = await communicator.connect()
    if not connected:
        return None, code
    return communicator, await communicator.receive_json_from(timeout=10)


async def until(
    ws: WebsocketCommunicator, match: Callable[[dict[str, Any]], bool], timeout: float = 60
) -> dict:
    """Frames until one matches (others, e.g. pongs or events in another order, are skipped)."""
    async with asyncio.timeout(timeout):
        while True:
            frame = await ws.receive_json_from(timeout=timeout)
            if match(frame):
                return frame


def event(name: str) -> Callable[[dict[str, Any]], bool]:
    return lambda frame: frame.get("type") == "event" and frame.get("event") == name


def of_type(name: str) -> Callable[[dict[str, Any]], bool]:
    return lambda frame: frame.get("type") == name


@pytest.fixture
def shops():
    """Two organizations, each with an owner (named) and a bot that hands conversations over."""
    acme = make_organization(name="Acme")
    other = make_organization(name="Other")
    for organization, name in ((acme, "Anna Berg"), (other, "Otto Brand")):
        owner = owner_of(organization)
        owner.full_name = name
        owner.save()
    bot = make_bot(organization=acme, name="Acme helper", handoff_enabled=True)
    make_bot(organization=other, name="Other helper", handoff_enabled=True)
    return acme, other, bot


async def test_an_anonymous_or_organizationless_or_cross_site_admin_socket_is_refused(shops) -> None:
    _ws, code = await operator_socket()
    assert code == 4401
    loner = await sync_to_async(make_user)()
    _ws, code = await operator_socket(loner)
    assert code == 4403
    acme, _other, _bot = shops
    owner = await sync_to_async(owner_of)(acme)
    ws, _ready = await operator_socket(owner, origin="https://evil.example")
    assert ws is None  # refused at the edge: another site cannot ride the admin session


async def test_visitor_and_operator_hand_a_conversation_over_and_back_and_the_other_organization_sees_nothing(
    shops,
) -> None:
    acme, other, bot = shops
    anna = await sync_to_async(owner_of)(acme)
    otto = await sync_to_async(owner_of)(other)
    operator, ready = await operator_socket(anna)
    assert ready["type"] == "ready" and ready["handoffs"] == [] and ready["notify_browser"] is True
    outsider, _ = await operator_socket(otto)

    visitor = await connect(bot)
    assert (await visitor.receive_json_from())["bot"]["handoff_enabled"] is True
    await visitor.send_json_to({"type": "message", "text": "Can I talk to a person?"})
    handoff = await until(visitor, of_type("handoff"))
    assert handoff == {"type": "handoff", "status": "waiting", "operator": "", "available": True}
    done = await until(visitor, of_type("done"))
    assert done["message_id"] is None  # the bot did not answer
    conversation_id = done["conversation_id"]

    requested = await until(operator, event("handoff.requested"))
    assert requested["conversation"]["id"] == conversation_id
    assert requested["conversation"]["last_text"] == "Can I talk to a person?"

    # Another organization's operator: nothing arrives, and taking or replying changes nothing.
    assert await outsider.receive_nothing(timeout=0.5)
    for frame in ({"type": "take"}, {"type": "reply", "text": "Hi from Other"}, {"type": "close"}):
        await outsider.send_json_to({**frame, "conversation_id": conversation_id})
        refused = await until(outsider, of_type("error"))
        assert refused["code"] == "conversation_not_found"
    conversation = await Conversation.objects.aget(pk=conversation_id)
    assert conversation.handoff_status == HandoffStatus.WAITING and conversation.handoff_operator_id is None

    await operator.send_json_to({"type": "take", "conversation_id": conversation_id})
    updated = await until(operator, of_type("updated"))
    assert updated["conversation"]["status"] == "taken" and updated["conversation"]["operator"] == "Anna Berg"
    taken = await until(visitor, of_type("handoff"))
    assert taken["status"] == "taken" and taken["operator"] == "Anna Berg"

    # Typing both ways.
    await operator.send_json_to({"type": "typing", "conversation_id": conversation_id})
    assert (await until(visitor, of_type("typing")))["operator"] == "Anna Berg"
    await visitor.send_json_to({"type": "typing"})
    assert (await until(operator, event("visitor.typing")))["conversation"]["id"] == conversation_id

    await operator.send_json_to({"type": "reply", "conversation_id": conversation_id, "text": "Anna here!"})
    reply = await until(visitor, of_type("operator_message"))
    assert reply["text"] == "Anna here!" and reply["operator"] == "Anna Berg"
    sent = await until(operator, of_type("sent"))
    assert sent["message"]["role"] == "operator" and sent["message"]["operator_name"] == "Anna Berg"

    # The visitor's next message goes to Anna, not to the bot.
    await visitor.send_json_to({"type": "message", "text": "My order 123 never came"})
    assert (await until(visitor, of_type("done")))["message_id"] is None
    relayed = await until(operator, event("visitor.message"))
    assert relayed["message"]["text"] == "My order 123 never came"
    assert await outsider.receive_nothing(timeout=0.5)

    await operator.send_json_to({"type": "release", "conversation_id": conversation_id})
    assert (await until(visitor, of_type("handoff")))["status"] == ""
    await visitor.send_json_to({"type": "message", "text": "How long is shipping?"})
    answered = await until(visitor, of_type("done"), timeout=60)
    assert answered["message_id"] is not None  # the bot answers again

    roles = [m.role async for m in Message.objects.filter(conversation_id=conversation_id).order_by("id")]
    assert roles == ["user", "operator", "user", "user", "assistant"]
    operator_message = await Message.objects.aget(conversation_id=conversation_id, role=MessageRole.OPERATOR)
    assert operator_message.operator_id == anna.pk
    for ws in (visitor, operator, outsider):
        await ws.disconnect()


async def test_with_nobody_online_the_visitor_is_told_and_the_conversation_waits(shops) -> None:
    _acme, _other, bot = shops
    visitor = await connect(bot)
    await visitor.receive_json_from()
    await visitor.send_json_to({"type": "message", "text": "Hi", "handoff": True})  # the header's button
    handoff = await until(visitor, of_type("handoff"))
    assert handoff["status"] == "waiting" and handoff["available"] is False
    done = await until(visitor, of_type("done"))
    await visitor.disconnect()

    # The visitor comes back later: the widget learns the state at once, and an operator's reply reaches it.
    conversation = await Conversation.objects.aget(pk=done["conversation_id"])
    assert conversation.handoff_status == HandoffStatus.WAITING
    again = await connect(bot, conversation=str(conversation.pk))
    ready = await again.receive_json_from()
    assert ready["handoff"]["status"] == "waiting"
    anna = await sync_to_async(owner_of)(bot.organization)
    operator, listed = await operator_socket(anna)
    assert [c["id"] for c in listed["handoffs"]] == [str(conversation.pk)]
    await operator.send_json_to({"type": "take", "conversation_id": str(conversation.pk)})
    await operator.send_json_to(
        {"type": "reply", "conversation_id": str(conversation.pk), "text": "Back now"}
    )
    assert (await until(again, of_type("operator_message")))["text"] == "Back now"
    for ws in (again, operator):
        await ws.disconnect()


async def test_a_bot_without_handoff_answers_a_request_for_a_person_itself(shops) -> None:
    _acme, _other, bot = shops
    bot.handoff_enabled = False
    await bot.asave()
    visitor = await connect(bot)
    assert (await visitor.receive_json_from())["bot"]["handoff_enabled"] is False
    await visitor.send_json_to({"type": "message", "text": "talk to a person", "handoff": True})
    done = await until(visitor, of_type("done"), timeout=60)
    assert done["message_id"] is not None
    conversation = await Conversation.objects.aget(pk=done["conversation_id"])
    assert conversation.handoff_status == HandoffStatus.NONE
    await visitor.disconnect()


async def test_a_fallback_reply_escalates_when_the_bot_says_so(shops) -> None:
    _acme, _other, bot = shops
    bot.handoff_after_fallback = True
    await bot.asave()
    visitor = await connect(bot)
    await visitor.receive_json_from()
    await visitor.send_json_to({"type": "message", "text": "Do you rent kayaks?"})  # no knowledge: fallback
    frames = []
    while not frames or frames[-1]["type"] != "done":
        frames.append(await visitor.receive_json_from(timeout=60))
    text = "".join(f["text"] for f in frames if f["type"] == "delta")
    assert text == bot.fallback_reply  # the visitor still gets the bot's reply, then a person is asked for
    handoff = next(f for f in frames if f["type"] == "handoff")
    assert handoff["status"] == "waiting"
    conversation = await Conversation.objects.aget(pk=frames[-1]["conversation_id"])
    assert conversation.handoff_reason == "fallback"
    await visitor.disconnect()


async def test_a_thumbs_down_over_the_socket_escalates_when_the_bot_says_so(shops) -> None:
    _acme, _other, bot = shops
    bot.handoff_after_thumbs_down = True
    await bot.asave()
    visitor = await connect(bot)
    await visitor.receive_json_from()
    await visitor.send_json_to({"type": "message", "text": "Do you rent kayaks?"})
    done = await until(visitor, of_type("done"), timeout=60)
    await visitor.send_json_to({"type": "feedback", "message_id": done["message_id"], "value": "down"})
    handoff = await until(visitor, of_type("handoff"))
    assert handoff["status"] == "waiting"
    conversation = await Conversation.objects.aget(pk=done["conversation_id"])
    assert conversation.handoff_reason == "thumbs_down"
    await visitor.disconnect()
