"""A Redis outage during chat (a Redis server of the test's own, stopped and started again): every message
is stored and answered, limits are counted in the process meanwhile, and the pooled connections that died
with the server cost nothing once it is back (docs/operations.md, "What happens when something fails")."""

from __future__ import annotations

import asyncio

import pytest
import redis
from asgiref.sync import sync_to_async
from django.test import AsyncClient

from chatbots.exceptions import RateLimited
from chatbots.models import Message, MessageRole, MessageStatus
from chatbots.pipeline.ratelimit import (
    REDIS_DOWN_PAUSE_SECONDS,
    Limit,
    check_rate_limits,
    redis_call,
    redis_state_forget,
)
from chatbots.testing import collect_answer, connect
from chatbots.tests.factories import make_chat_bot
from config.redis_clients import redis_connection_options


@pytest.fixture
def own_redis(restartable_redis, settings):  # type: ignore[no-untyped-def]
    settings.REDIS_URL = restartable_redis.url
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": restartable_redis.url,
            "OPTIONS": redis_connection_options(),
        }
    }
    yield restartable_redis
    redis_state_forget()


async def _ask(ws, text: str) -> dict:  # type: ignore[no-untyped-def]
    await ws.send_json_to({"type": "message", "text": text})
    return await collect_answer(ws)


async def _readyz_problems() -> dict:
    response = await AsyncClient().get("/readyz")
    return response.json().get("problems", {})


@pytest.mark.django_db(transaction=True)
async def test_messages_are_stored_and_answered_while_redis_is_down_and_at_once_after_it_returns(
    llm_server, own_redis
) -> None:
    bot = await sync_to_async(make_chat_bot)(llm_server, model="fake?reply=Within+30+days.")
    ws = await connect(bot)
    await ws.receive_json_from()
    questions = ["Before the outage?", "While Redis is down?", "Still down?", "After the restart?"]
    answers = [await _ask(ws, questions[0])]
    # Several pooled connections, all of which die with the server.
    await asyncio.gather(*(redis_call(lambda client: client.ping()) for _ in range(10)))

    own_redis.stop()
    answers += [await _ask(ws, question) for question in questions[1:3]]
    assert "redis" in await _readyz_problems()

    own_redis.start()
    await asyncio.sleep(REDIS_DOWN_PAUSE_SECONDS)  # the pipeline's pause before it tries Redis again
    counted = await asyncio.gather(*(redis_call(lambda client: client.incr("probe")) for _ in range(20)))
    assert sorted(counted) == list(range(1, 21))  # no command failed on a connection of the old server
    answers.append(await _ask(ws, questions[3]))
    assert "redis" not in await _readyz_problems()
    await ws.disconnect()

    assert [(a["errors"], a["done"]["incomplete"]) for a in answers] == [([], False)] * 4
    stored = [m async for m in Message.objects.order_by("pk").values_list("role", "text", "status")]
    assert [text for role, text, _ in stored if role == MessageRole.USER] == questions
    assert [status for role, _, status in stored if role == MessageRole.ASSISTANT] == [
        MessageStatus.COMPLETE
    ] * 4
    # Counted in Redis again after the restart, not in the process's memory.
    client = redis.Redis.from_url(own_redis.url)
    assert client.keys(f"parlor:rl:visitor:{bot.pk}:*")
    client.close()


async def test_rate_limits_are_counted_in_the_process_while_redis_is_down(own_redis) -> None:
    own_redis.stop()
    limits = [Limit("visitor:1:someone", "2/h")]
    await check_rate_limits(limits, bot_id=1)
    await check_rate_limits(limits, bot_id=1)
    with pytest.raises(RateLimited):
        await check_rate_limits(limits, bot_id=1)
    await check_rate_limits([Limit("visitor:1:someone-else", "2/h")], bot_id=1)  # others are not affected
