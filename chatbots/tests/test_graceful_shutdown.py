"""SIGTERM to a real web process (config/serve.py, as `manage.py up` and docker compose start it) while
answers stream from a slow model: an answer that ends within the grace period is delivered and stored
complete, one still streaming when it ends is stored as incomplete, none is lost."""

from __future__ import annotations

import asyncio
import json
import signal

import pytest
import websockets

from chatbots.models import Message, MessageRole, MessageStatus
from chatbots.testing import start_daphne, stop
from chatbots.tests.factories import make_chat_bot

pytestmark = pytest.mark.slow_process


async def _open(url: str, public_id: str, visitor: str, question: str):  # type: ignore[no-untyped-def]
    socket_url = url.replace("http://", "ws://") + f"/ws/chat/{public_id}/?visitor={visitor}"
    ws = await websockets.connect(socket_url)
    assert json.loads(await ws.recv())["type"] == "ready"
    await ws.send(json.dumps({"type": "message", "text": question}))
    return ws


async def _read(ws, first: dict | None = None) -> dict:  # type: ignore[no-untyped-def]
    """Frames until `done` or until the server closes the socket."""
    answer: dict = {"text": "", "done": None}
    try:
        while True:
            frame = first or json.loads(await asyncio.wait_for(ws.recv(), 90))
            first = None
            if frame["type"] == "delta":
                answer["text"] += frame["text"]
            elif frame["type"] == "done":
                answer["done"] = frame
                await ws.close()
                return answer
    except websockets.ConnectionClosed:
        return answer


async def _two_answers_then_sigterm(url: str, short_bot: str, long_bot: str, proc) -> tuple[dict, dict]:  # type: ignore[no-untyped-def]
    short_ws = await _open(url, short_bot, "visitor-short", "Tell me about returns.")
    long_ws = await _open(url, long_bot, "visitor-long", "Tell me about returns.")
    # Both are streaming once each sent its first token; then the server is told to stop.
    accepted = [json.loads(await asyncio.wait_for(ws.recv(), 90)) for ws in (short_ws, long_ws)]
    assert [frame["type"] for frame in accepted] == ["accepted", "accepted"]  # stored, then streamed
    firsts = [json.loads(await asyncio.wait_for(ws.recv(), 90)) for ws in (short_ws, long_ws)]
    assert [frame["type"] for frame in firsts] == ["delta", "delta"]
    proc.send_signal(signal.SIGTERM)
    return await asyncio.gather(_read(short_ws, firsts[0]), _read(long_ws, firsts[1]))


def test_sigterm_finishes_answers_within_the_grace_period_and_stores_the_rest_as_incomplete(
    transactional_db, llm_server
) -> None:
    short_bot = make_chat_bot(llm_server, model="fake?words=20&tps=40&id=graceful-short", name="Short")
    long_bot = make_chat_bot(llm_server, model="gpt-4o-mini?words=600&tps=20&usage=0", name="Long")  # 30 s
    proc, url, _log = start_daphne({"WEB_SHUTDOWN_GRACE": "8"})
    try:
        short, long = asyncio.run(
            _two_answers_then_sigterm(url, short_bot.public_id, long_bot.public_id, proc)
        )
        assert proc.wait(timeout=90) is not None  # the server stopped by itself after the grace period
    finally:
        stop(proc)

    # Within the grace period: delivered to the visitor and stored complete.
    assert short["done"] is not None and short["done"]["incomplete"] is False
    finished = Message.objects.get(role=MessageRole.ASSISTANT, conversation__bot=short_bot)
    assert finished.status == MessageStatus.COMPLETE and finished.text == short["text"]
    assert len(finished.text.split()) == 20
    # Still streaming when the grace period ended: what streamed is stored, with its usage and the reason.
    assert long["done"] is None and long["text"]
    cut = Message.objects.get(role=MessageRole.ASSISTANT, conversation__bot=long_bot)
    assert (cut.status, cut.error_code) == (MessageStatus.INCOMPLETE, "server_shutdown")
    assert cut.text.startswith(long["text"]) and len(cut.text.split()) < 600
    assert cut.model.startswith("gpt-4o-mini") and cut.completion_tokens > 0 and cut.cost_usd > 0
    assert Message.objects.filter(role=MessageRole.USER).count() == 2
