"""Tokens that arrive together leave together: fewer frames under load, token by token otherwise.

Real consumer, pipeline, database and Redis; the model is the local OpenAI-compatible server, either
streaming at a model's pace or sending a whole answer in one write (tokens faster than they are read)."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async

from chatbots.llm.client import ServerSentEvents
from chatbots.llm.testserver import LOREM
from chatbots.models import Message, MessageStatus
from chatbots.testing import connect
from chatbots.tests.factories import make_chat_bot


async def _delta_frames(bot, question: str) -> tuple[list[str], dict]:
    ws = await connect(bot)
    await ws.receive_json_from()  # ready
    await ws.send_json_to({"type": "message", "text": question})
    frames: list[str] = []
    while True:
        frame = await ws.receive_json_from(timeout=20)
        if frame["type"] == "delta":
            frames.append(frame["text"])
        elif frame["type"] == "done":
            await ws.disconnect(timeout=15)
            return frames, frame
        else:
            assert frame["type"] in ("accepted", "sources"), frame


@pytest.mark.django_db(transaction=True)
async def test_an_answer_streamed_at_a_models_pace_reaches_the_socket_one_frame_per_token(llm_server) -> None:
    bot = await sync_to_async(make_chat_bot)(
        llm_server, model="fake?reply=Boots+can+be+returned+within+30+days.&tps=40"
    )
    frames, done = await _delta_frames(bot, "How long do I have to return boots?")
    assert frames == ["Boots", " can", " be", " returned", " within", " 30", " days."]
    stored = await Message.objects.aget(pk=done["message_id"])
    assert stored.text == "Boots can be returned within 30 days." and stored.status == MessageStatus.COMPLETE


@pytest.mark.django_db(transaction=True)
async def test_tokens_arriving_at_once_leave_in_fewer_frames_with_the_text_intact_and_in_order(
    llm_server,
) -> None:
    bot = await sync_to_async(make_chat_bot)(
        llm_server, model="fake?words=300&burst=1", max_output_tokens=1000
    )
    frames, done = await _delta_frames(bot, "How long do I have to return boots?")
    expected = " ".join(LOREM[i % len(LOREM)] for i in range(300))
    assert 1 <= len(frames) < 300
    assert "".join(frames) == expected
    stored = await Message.objects.aget(pk=done["message_id"])
    assert stored.text == expected and stored.status == MessageStatus.COMPLETE
    assert done["incomplete"] is False


def test_server_sent_events_split_anywhere_give_the_same_data_in_order() -> None:
    body = (
        'data: {"choices":[{"delta":{"content":"Grüße"}}]}\r\n\r\n'
        ": a comment\n\n"
        "event: message\n"
        'data: {"choices":[{"delta":{"content":" aus"}}]}\n\n'
        'data: {"choices":[{"delta":{"content":" Zürich"}}]}\n\n'
        "data: [DONE]\n\n"
        'data: {"after":"done"}\n\n'
    ).encode()
    whole = ServerSentEvents().feed(body)
    assert len(whole) == 3 and whole[0] == '{"choices":[{"delta":{"content":"Grüße"}}]}'.encode()
    for size in (1, 2, 3, 7, 50):  # reads ending mid-line and mid-character
        events = ServerSentEvents()
        found = [
            data for start in range(0, len(body), size) for data in events.feed(body[start : start + size])
        ]
        assert found == whole and events.done
