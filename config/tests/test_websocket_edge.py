"""The WebSocket edge (config/websocket_edge.py) in front of every socket, through config.asgi."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.testing import WebsocketCommunicator

from accounts.tests.factories import make_organization
from chatbots.services import bot_create
from config.asgi import application
from config.websocket_edge import WebSocketEdge

CUSTOMER_SITE = "https://shop.example"


def socket(path: str, *, host: str | None = "testserver", origin: str | None = None, app=application):
    headers = [(b"host", host.encode())] if host is not None else []
    if origin is not None:
        headers.append((b"origin", origin.encode()))
    return WebsocketCommunicator(app, path, headers=headers)


@pytest.fixture
async def bot():
    organization = await sync_to_async(make_organization)()
    return await sync_to_async(bot_create)(
        organization=organization, name="Shop helper", allowed_origins=[CUSTOMER_SITE]
    )


@pytest.mark.django_db(transaction=True)
async def test_the_chat_socket_opens_from_a_customer_site(bot):
    ws = socket(f"/ws/chat/{bot.public_id}/?visitor=visitor-0123456789", origin=CUSTOMER_SITE)
    connected, _ = await ws.connect()
    assert connected
    assert (await ws.receive_json_from(timeout=5))["type"] == "ready"
    await ws.disconnect()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("host", ["evil.example", "testserver.evil.example", "", None])
async def test_a_chat_socket_naming_a_host_outside_allowed_hosts_is_refused(bot, host):
    # The Origin is one the bot allows: only the Host is wrong (DNS rebinding, a host-header attack).
    ws = socket(f"/ws/chat/{bot.public_id}/?visitor=visitor-0123456789", host=host, origin=CUSTOMER_SITE)
    connected, _ = await ws.connect()
    assert not connected


@pytest.mark.django_db(transaction=True)
async def test_the_chat_sockets_origin_is_left_to_the_bots_own_rule(bot):
    ws = socket(f"/ws/chat/{bot.public_id}/?visitor=visitor-0123456789", origin="https://evil.example")
    assert (await ws.connect())[0]  # the edge lets it through; the consumer says why it refuses
    assert (await ws.receive_json_from(timeout=5))["code"] == "origin_not_allowed"


async def test_the_diagnostic_echo_socket_is_gone():
    ws = socket("/ws/echo/", origin="http://testserver")
    with pytest.raises(ValueError, match="No route found"):
        await ws.connect()


# --- sockets that are not cross-origin by design (admin-side ones) ---------------------------------
class Accepting(AsyncWebsocketConsumer):
    async def connect(self) -> None:
        await self.accept()


EDGE = WebSocketEdge(Accepting.as_asgi(), cross_origin_paths=("/ws/chat/",))


@pytest.mark.parametrize(
    ("host", "origin"),
    [
        ("testserver", "http://testserver"),
        ("testserver", "https://testserver"),  # TLS ended at a proxy: the socket arrives as ws://
        ("testserver:8000", "http://testserver:8000"),
        ("testserver:443", "https://testserver"),
        ("localhost", "https://app.example"),  # listed in CSRF_TRUSTED_ORIGINS
    ],
)
@pytest.mark.django_db  # Channels closes stale DB connections around each consumer event
async def test_other_sockets_open_from_the_same_origin(settings, host, origin):
    settings.CSRF_TRUSTED_ORIGINS = ["https://app.example"]
    ws = socket("/ws/inbox/", host=host, origin=origin, app=EDGE)
    assert (await ws.connect())[0]
    await ws.disconnect()


@pytest.mark.parametrize(
    ("host", "origin"),
    [
        ("testserver", "https://shop.example"),  # another site
        ("testserver", None),  # no Origin
        ("testserver", "null"),  # a sandboxed frame or a file
        ("testserver:8000", "http://testserver:9000"),  # another port is another origin
        ("evil.example", "http://evil.example"),  # same origin, but not one of our hosts
    ],
)
async def test_other_sockets_from_another_origin_or_host_are_refused(host, origin):
    ws = socket("/ws/inbox/", host=host, origin=origin, app=EDGE)
    assert not (await ws.connect())[0]
