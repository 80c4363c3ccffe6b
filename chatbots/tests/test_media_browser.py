"""A visitor sees a recording cited at its moment: a video at a media URL, ingested on a real Celery worker,
asked on the bot's chat page in headless Chromium against a live Parlor (Daphne subprocess)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from chatbots.services import source_set_bots
from chatbots.testing import LiveParlor, screenshot
from chatbots.tests.factories import make_bot
from knowledge.models import Source, SourceKind
from knowledge.services import source_create
from knowledge.testing import Site, serve
from knowledge.tests.factories import make_recording

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_chat_page_shows_the_moment_of_a_video_and_links_to_it(
    live_parlor: LiveParlor, new_page: Callable[..., Any], celery_worker: object, llm_server, settings
) -> None:
    settings.KNOWLEDGE_ALLOW_PRIVATE_URLS = True
    settings.TRANSCRIPTION_BASE_URL = llm_server.base_url
    settings.TRANSCRIPTION_MODEL = "whisper-browser"
    llm_server.script_transcript(
        "whisper-browser",
        [
            (0.0, 5.0, "Welcome to the Trailblazer tent tutorial."),
            (
                252.0,
                259.0,
                "To reset the air pump, hold the blue valve button for ten seconds until it clicks.",
            ),
        ],
    )
    bot = make_bot(name="Tent helper")  # offline: answers by quoting the passage
    site = Site({"/tutorial.mp4": (200, "video/mp4", make_recording(seconds=2, video=True))})
    with serve(site):
        source = source_create(
            organization=bot.organization, kind=SourceKind.MEDIA_URL, title="Tent tutorial",
            url=f"{site.base}/tutorial.mp4",
        )  # fmt: skip
        source_set_bots(source=source, bots=[bot])
        deadline = time.monotonic() + 90
        while (source := Source.objects.get(pk=source.pk)).status not in ("ready", "failed"):
            assert time.monotonic() < deadline
            time.sleep(0.1)
    assert source.status == "ready", source.status_reason

    page = new_page()
    page.goto(f"{live_parlor.url}/chat/{bot.public_id}/")
    page.wait_for_selector(".pc-status[data-state='online']")
    page.fill(".pc-input", "How do I reset the air pump?")
    page.press(".pc-input", "Enter")
    page.wait_for_selector(".pc-msg--assistant .pc-actions", timeout=30000)
    answer = page.locator(".pc-msg--assistant").last
    assert "blue valve button" in answer.locator(".pc-text").inner_text()
    cited = answer.locator(".pc-sources li")
    assert cited.count() == 1
    assert cited.locator(".pc-time").inner_text().strip() == "· 04:12"
    assert cited.locator("a").get_attribute("href") == f"{site.base}/tutorial.mp4#t=252"
    assert cited.locator("a").inner_text() == "Tent tutorial"
    screenshot(page, "chat-video-source.png")
