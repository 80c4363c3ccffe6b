"""An answer the visitor stops still says which model and provider were streaming, the tokens used so far
(estimated when the provider sent no count) and their estimated cost."""

from __future__ import annotations

import asyncio

import pytest
from asgiref.sync import sync_to_async

from chatbots.models import Message, MessageRole, MessageStatus
from chatbots.testing import connect
from chatbots.tests.factories import make_chat_bot

pytestmark = pytest.mark.django_db(transaction=True)


async def _stored_answer(bot) -> Message:  # type: ignore[no-untyped-def]
    for _ in range(300):  # a deadline for a loaded machine, not a timing assertion
        reply = await Message.objects.filter(role=MessageRole.ASSISTANT, conversation__bot=bot).afirst()
        if reply:
            return reply
        await asyncio.sleep(0.05)
    raise AssertionError("the stopped answer was not stored")


async def test_answer_stopped_by_the_visitor_records_model_tokens_and_cost(llm_server) -> None:
    # A priced model (gpt-4o-mini) that streams slowly enough to be stopped and never reports usage (a
    # provider counts at the end of a stream, if at all): the tokens are estimated.
    model = "gpt-4o-mini?words=200&tps=20&usage=0"
    bot = await sync_to_async(make_chat_bot)(llm_server, model=model)
    ws = await connect(bot)
    await ws.receive_json_from()
    await ws.send_json_to({"type": "message", "text": "Tell me everything about returns."})
    assert (await ws.receive_json_from(timeout=10))["type"] == "accepted"
    deltas = [await ws.receive_json_from(timeout=10) for _ in range(3)]
    assert [frame["type"] for frame in deltas] == ["delta"] * 3
    await ws.disconnect(timeout=15)

    reply = await _stored_answer(bot)
    assert (reply.status, reply.error_code) == (MessageStatus.INCOMPLETE, "client_disconnected")
    assert reply.model.startswith("gpt-4o-mini") and reply.provider == "custom"
    assert reply.prompt_tokens > 0 and reply.completion_tokens > 0
    assert reply.completion_tokens < 200 * 2  # what streamed before the stop, not the whole answer
    assert reply.cost_usd is not None and reply.cost_usd > 0
