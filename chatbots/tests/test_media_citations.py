"""A question answered only in a recording is answered with the moment cited: a tutorial video ingested
on a real Celery worker (made by the bundled ffmpeg, transcribed by the local server), asked over the real
chat socket."""

from __future__ import annotations

import time

import pytest
from asgiref.sync import sync_to_async
from django.core.files.base import ContentFile

from chatbots.models import Message, MessageRole
from chatbots.services import source_set_bots
from chatbots.testing import collect_answer, connect
from chatbots.tests.factories import make_bot, make_chat_bot, scripted
from knowledge.models import Source, SourceKind
from knowledge.services import source_create
from knowledge.testing import Site, serve
from knowledge.tests.factories import make_recording

pytestmark = pytest.mark.django_db(transaction=True)

QUESTION = "How do I reset the air pump of the tent?"
TUTORIAL = [
    (0.0, 6.0, "Welcome to the Trailblazer tent tutorial."),
    (70.0, 78.0, "First unpack the poles and lay the inner tent flat on the ground."),
    (130.0, 140.0, "Clip the rain fly to the four corners and tighten the guy lines."),
    (252.0, 259.5, "To reset the air pump, hold the blue valve button for ten seconds until it clicks."),
    (301.0, 309.0, "When you pack up, roll the tent from the far end towards the open valve."),
]


@pytest.fixture
def transcriber(llm_server, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path  # uploads go to a temporary folder
    llm_server.transcripts.clear()
    llm_server.script_transcript("whisper-tutorial", TUTORIAL)
    settings.TRANSCRIPTION_BASE_URL = llm_server.base_url
    settings.TRANSCRIPTION_MODEL = "whisper-tutorial"
    return llm_server


def _ingested(bot, **fields) -> Source:
    source = source_create(organization=bot.organization, **fields)
    source_set_bots(source=source, bots=[bot])
    deadline = time.monotonic() + 90
    while (source := Source.objects.get(pk=source.pk)).status not in ("ready", "failed"):
        assert time.monotonic() < deadline, f"still {source.status}"
        time.sleep(0.1)
    assert source.status == "ready", source.status_reason
    return source


async def _ask(bot) -> dict:
    ws = await connect(bot)
    await ws.receive_json_from()
    await ws.send_json_to({"type": "message", "text": QUESTION})
    answer = await collect_answer(ws)
    await ws.disconnect(timeout=15)
    return answer


async def test_an_uploaded_video_is_cited_at_the_moment_that_answers(celery_worker, transcriber) -> None:
    bot = await sync_to_async(make_chat_bot)(
        transcriber, model=scripted(reply="Hold the blue valve button for ten seconds [1].")
    )
    video = await sync_to_async(_ingested)(
        bot, kind=SourceKind.VIDEO, title="Tent tutorial",
        file=ContentFile(make_recording(seconds=2, video=True), name="tutorial.mp4"),
    )  # fmt: skip
    answer = await _ask(bot)
    assert answer["text"] == "Hold the blue valve button for ten seconds [1]."
    (source,) = answer["sources"]
    assert (source["source_id"], source["title"]) == (video.pk, "Tent tutorial")
    assert (source["start"], source["timestamp"], source["url"]) == (252.0, "04:12", None)
    # The model was told where in the recording each passage is, so it can say it too.
    system = transcriber.requests[-1].messages[0]["content"]
    assert "[1] Tent tutorial, at 04:12\n" in system
    stored = await Message.objects.filter(role=MessageRole.ASSISTANT).alatest("pk")
    assert stored.sources == answer["sources"]


async def test_a_media_url_source_links_to_the_moment(celery_worker, transcriber, settings) -> None:
    settings.KNOWLEDGE_ALLOW_PRIVATE_URLS = True
    bot = await sync_to_async(make_bot)(name="Offline helper")  # the offline provider quotes the passage
    site = Site(
        {"/media/tutorial.webm": (200, "video/webm", make_recording(seconds=2, video=True, ext="webm"))}
    )
    with serve(site):
        await sync_to_async(_ingested)(
            bot, kind=SourceKind.MEDIA_URL, title="Tent tutorial", url=f"{site.base}/media/tutorial.webm"
        )
    answer = await _ask(bot)
    assert "hold the blue valve button for ten seconds" in answer["text"].lower()
    (source,) = answer["sources"]
    assert source["timestamp"] == "04:12"
    assert source["url"] == f"{site.base}/media/tutorial.webm#t=252"
    assert f"Tent tutorial, at 04:12 ({site.base}/media/tutorial.webm#t=252)" in answer["text"]
