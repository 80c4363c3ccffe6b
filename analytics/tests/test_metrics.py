"""Prometheus /metrics: only for the scraper's token or staff; request counters, today's chat figures
from the roll-up, knowledge sources by status and Celery queue lengths."""

from __future__ import annotations

import pytest
import redis
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings as django_settings
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from accounts.tests.factories import make_user, owner_of
from analytics.services import daily_rollup
from analytics.tests.factories import make_bot, make_traffic
from chatbots.testing import connect
from config.asgi import application
from knowledge.models import SourceKind
from knowledge.services import source_create

pytestmark = pytest.mark.django_db

TOKEN = "metrics-token-3f9a7c1e5b"


def samples(body: bytes) -> dict[tuple[str, tuple], float]:
    found = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def test_metrics_need_the_token_or_a_staff_user(client, settings):
    settings.METRICS_TOKEN = TOKEN
    refused = client.get("/metrics")
    assert refused.status_code == 401 and refused["WWW-Authenticate"].startswith("Bearer")
    assert refused.json()["error"]["code"] == "unauthorized"
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 200
    client.force_login(owner_of(make_bot().organization))  # a customer, even an owner, is no operator
    assert client.get("/metrics").status_code == 401
    client.force_login(make_user(is_staff=True))
    assert client.get("/metrics").status_code == 200


def test_metrics_show_requests_chat_knowledge_and_queues(client, settings):
    settings.METRICS_TOKEN = TOKEN
    auth = {"HTTP_AUTHORIZATION": f"Bearer {TOKEN}"}
    bot = make_bot()
    make_traffic(bot=bot, day=timezone.now().date())
    daily_rollup(day=timezone.now().date())
    source_create(organization=bot.organization, kind=SourceKind.TEXT, title="Notes", text="Boots.")
    broker = redis.Redis.from_url(django_settings.CELERY_BROKER_URL)
    broker.rpush("metrics-test-queue", "a", "b")
    settings.METRICS_CELERY_QUEUES = ["metrics-test-queue"]
    try:
        client.get("/healthz")
        found = samples(client.get("/metrics", **auth).content)
    finally:
        broker.delete("metrics-test-queue")
    requests = [
        value for (name, labels), value in found.items()
        if name == "parlor_http_requests_total" and ("view", "healthz") in labels and ("status", "200") in labels
    ]  # fmt: skip
    assert requests and requests[0] >= 1
    assert found[("parlor_chat_answers_today", (("kind", "faq"),))] == 1
    assert found[("parlor_chat_today", (("figure", "questions"),))] == 4
    assert ("parlor_chat_latency_today_seconds", (("quantile", "0.95"),)) in found
    assert found[("parlor_analytics_rollup_age_seconds", ())] < 60
    assert sum(value for (name, _), value in found.items() if name == "parlor_knowledge_sources") >= 1
    assert found[("parlor_celery_queue_length", (("queue", "metrics-test-queue"),))] == 2
    assert all(value == 1 for (name, _), value in found.items() if name == "parlor_metrics_source_up")


def test_a_source_that_fails_is_reported_and_the_scrape_still_answers(client, settings):
    settings.METRICS_TOKEN = TOKEN
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"  # nothing listens there
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    found = samples(response.content)
    assert response.status_code == 200
    assert found[("parlor_metrics_source_up", (("source", "celery"),))] == 0
    assert found[("parlor_metrics_source_up", (("source", "chat"),))] == 1
    assert not any(name == "parlor_celery_queue_length" for name, _ in found)


def _websocket_figures(body: bytes) -> dict[tuple[str, tuple], float]:
    return {key: value for key, value in samples(body).items() if key[0].startswith("parlor_websocket")}


@pytest.mark.django_db(transaction=True)
async def test_websocket_handshakes_open_sockets_frames_and_closes_are_counted(async_client, settings):
    settings.METRICS_TOKEN = TOKEN
    auth = {"Authorization": f"Bearer {TOKEN}"}
    bot = await sync_to_async(make_bot)()
    before = _websocket_figures((await async_client.get("/metrics", headers=auth)).content)

    def grew(now: dict, name: str, labels: tuple = ()) -> float:
        return now.get((name, labels), 0) - before.get((name, labels), 0)

    socket = await connect(bot)
    assert (await socket.receive_json_from())["type"] == "ready"
    await socket.send_json_to({"type": "ping"})
    assert (await socket.receive_json_from())["type"] == "pong"
    during = _websocket_figures((await async_client.get("/metrics", headers=auth)).content)
    await socket.disconnect()
    # The edge refuses a socket naming a host that is not allowed: no handshake at all.
    stranger = WebsocketCommunicator(
        application, f"/ws/chat/{bot.public_id}/", headers=[(b"host", b"evil.test")]
    )
    assert (await stranger.connect())[0] is False
    # An unknown bot: the chat accepts, says why in a frame, and closes with its code.
    unknown = WebsocketCommunicator(application, "/ws/chat/b_unknown00/", headers=[(b"host", b"testserver")])
    assert (await unknown.connect())[0] is True
    assert (await unknown.receive_json_from())["type"] == "error"
    closed = await unknown.receive_output()
    assert closed["type"] == "websocket.close"
    await unknown.wait()
    after = _websocket_figures((await async_client.get("/metrics", headers=auth)).content)

    assert grew(during, "parlor_websocket_open") == 1
    assert grew(during, "parlor_websocket_frames_total", (("direction", "received"),)) == 1
    assert grew(during, "parlor_websocket_frames_total", (("direction", "sent"),)) == 2  # ready, pong
    assert grew(after, "parlor_websocket_open") == 0
    assert grew(after, "parlor_websocket_connections_total", (("outcome", "accepted"),)) == 2
    assert grew(after, "parlor_websocket_connections_total", (("outcome", "refused"),)) == 1
    assert grew(after, "parlor_websocket_server_closes_total", (("code", str(closed["code"])),)) == 1
    assert grew(after, "parlor_websocket_connection_duration_seconds_count") == 2
