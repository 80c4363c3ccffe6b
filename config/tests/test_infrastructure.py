from __future__ import annotations

import random

import pytest
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.db import connection
from django.test import override_settings

from accounts.models import Organization
from config.celery import diagnostics_ping_task
from knowledge.models import Chunk


def _unit_vector(rng: random.Random, dims: int = 384) -> list[float]:
    values = [rng.gauss(0, 1) for _ in range(dims)]
    norm = sum(v * v for v in values) ** 0.5
    return [v / norm for v in values]


@pytest.mark.django_db
def test_hnsw_index_answers_nearest_neighbour_query() -> None:
    rng = random.Random(7)
    org = Organization.objects.create(name="Acme", slug="acme")
    vectors = [_unit_vector(rng) for _ in range(1500)]
    Chunk.objects.bulk_create(
        [Chunk(organization=org, content=f"chunk {i}", embedding=v) for i, v in enumerate(vectors)]
    )
    target = vectors[42]
    query = "SELECT content FROM knowledge_chunk ORDER BY embedding <=> %s::vector LIMIT 5"
    literal = "[" + ",".join(f"{v:.6f}" for v in target) + "]"
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE knowledge_chunk")
        # On a table this small the planner rightly prefers a scan; forbid it to prove the
        # HNSW index can serve the query (the test runs inside a transaction, so SET LOCAL is scoped).
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("EXPLAIN " + query, [literal])
        plan = "\n".join(row[0] for row in cursor.fetchall())
        cursor.execute(query, [literal])
        nearest = [row[0] for row in cursor.fetchall()]
    assert "Index Scan using chunk_embedding_hnsw" in plan, plan[:300]
    assert nearest[0] == "chunk 42"


def test_celery_task_runs_on_real_worker(celery_worker: object) -> None:
    result = diagnostics_ping_task.delay()
    payload = result.get(timeout=30)
    assert payload["pong"] is True
    assert payload["database"] == connection.settings_dict["NAME"]
    assert result.status == "SUCCESS"


class EchoConsumer(AsyncJsonWebsocketConsumer):
    """Relays through a channel-layer group: proves the socket -> Redis -> socket path. Test-only: the
    diagnostic echo socket it once served is no longer routed (config/tests/test_websocket_edge.py)."""

    group_name = "diagnostics.echo"

    async def connect(self) -> None:
        await self.channel_layer.group_add(self.group_name, self.channel_name)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        await self.channel_layer.group_discard(self.group_name, self.channel_name)

    async def receive_json(self, content, **kwargs) -> None:
        await self.channel_layer.group_send(
            self.group_name, {"type": "echo.message", "text": content["text"]}
        )

    async def echo_message(self, event) -> None:
        await self.send_json({"type": "echo", "text": event["text"], "via": "channel_layer"})


@pytest.mark.django_db  # Channels closes stale DB connections around each consumer event
async def test_websocket_round_trip_through_redis_channel_layer() -> None:
    assert type(get_channel_layer()).__name__ == "RedisChannelLayer"
    echo = EchoConsumer.as_asgi()
    sender = WebsocketCommunicator(echo, "/ws/echo/")
    listener = WebsocketCommunicator(echo, "/ws/echo/")
    assert (await sender.connect())[0]
    assert (await listener.connect())[0]
    await sender.send_json_to({"text": "hello parlor"})
    # Both sockets are in the group: the message reached the listener only by way of Redis.
    assert await listener.receive_json_from(timeout=5) == {
        "type": "echo",
        "text": "hello parlor",
        "via": "channel_layer",
    }
    assert (await sender.receive_json_from(timeout=5))["text"] == "hello parlor"
    await sender.disconnect()
    await listener.disconnect()


def test_healthz_answers_without_dependencies(client) -> None:
    with override_settings(REDIS_URL="redis://127.0.0.1:1/0"):
        response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_ready_with_database_redis_and_worker(client, celery_worker: object) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200, response.content
    assert response.json() == {"status": "ready"}


@pytest.mark.django_db
def test_readyz_503_when_redis_unreachable(client) -> None:
    with override_settings(REDIS_URL="redis://127.0.0.1:1/0"):
        response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["problems"]["redis"].startswith("redis unreachable")


@pytest.mark.django_db
def test_readyz_503_when_no_worker_answers(client) -> None:
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["problems"] == {"celery": "no celery worker answered"}
