"""The chat follows a long answer unless the visitor scrolled up, keeps the offline note over a reload, and
its theme follows what its label says (the visitor's system, or the website's background).

Real headless Chromium against a live Parlor (Daphne subprocess); offline answers come from knowledge
ingested by the real Celery worker, streamed ones from the local OpenAI-compatible test server.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from accounts.models import Organization
from chatbots.llm.testserver import FakeLLMServer
from chatbots.models import Bot
from chatbots.testing import HostPages, LiveParlor, host_page_html, screenshot
from chatbots.tests.factories import ANSWER_QUESTION, give_knowledge

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

AT_BOTTOM = "(() => { const l = document.querySelector('.pc-log'); "
AT_BOTTOM += "return l.scrollHeight - l.scrollTop - l.clientHeight < 4; })()"
OFFLINE_NOTE = "Answered from the knowledge base without the AI model."


@pytest.fixture(scope="module")
def llm() -> Iterator[FakeLLMServer]:
    server = FakeLLMServer().start()
    yield server
    server.stop()


def _bot(**fields: Any) -> Bot:
    org, _ = Organization.objects.get_or_create(slug="scroll-theme", defaults={"name": "Scroll and Theme"})
    return Bot.objects.create(organization=org, name="Helper", **fields)


def _wait_answered(page: Any, count: int) -> None:
    page.wait_for_function(
        f"() => document.querySelectorAll('.pc-msg--assistant .pc-actions').length >= {count}", timeout=60000
    )


def test_offline_answer_scrolls_into_view_and_keeps_its_note_after_a_reload(
    live_parlor: LiveParlor, new_page: Callable[..., Any], celery_worker: object
) -> None:
    bot = _bot()  # no language model anywhere: answers come offline, in one large piece
    give_knowledge(bot)
    page = new_page(viewport={"width": 420, "height": 420})  # a short log: any answer overflows it
    page.goto(f"{live_parlor.url}/chat/{bot.public_id}/")
    page.wait_for_selector(".pc-status[data-state='online']")
    page.fill(".pc-input", ANSWER_QUESTION)
    page.press(".pc-input", "Enter")
    _wait_answered(page, 1)
    answer = page.locator(".pc-msg--assistant").last
    assert OFFLINE_NOTE in answer.inner_text()
    assert page.evaluate("(() => { const l = document.querySelector('.pc-log'); "
                         "return l.scrollHeight > l.clientHeight + 100; })()")  # fmt: skip
    assert page.evaluate(AT_BOTTOM), "the log did not follow the answer"

    page.reload()  # the conversation is restored from the server's history
    page.wait_for_selector(".pc-msg--assistant .pc-actions")
    assert OFFLINE_NOTE in page.locator(".pc-msg--assistant").last.inner_text()
    assert page.evaluate(AT_BOTTOM)


def test_streaming_answer_leaves_the_log_alone_once_the_visitor_scrolled_up(
    live_parlor: LiveParlor, new_page: Callable[..., Any], llm: FakeLLMServer
) -> None:
    bot = _bot(provider="custom", base_url=llm.base_url, answer_style="mixed")
    bot.model = "parlor-test?words=400&tps=60"  # a long answer, streamed over several seconds
    bot.save(update_fields=["model"])
    page = new_page(viewport={"width": 420, "height": 420})
    page.goto(f"{live_parlor.url}/chat/{bot.public_id}/")
    page.wait_for_selector(".pc-status[data-state='online']")

    # First answer: the visitor stays at the bottom, the log follows to the end.
    page.fill(".pc-input", "Tell me everything about returns")
    page.press(".pc-input", "Enter")
    _wait_answered(page, 1)
    assert page.evaluate(AT_BOTTOM)

    # Second answer: once it streams the visitor scrolls up to re-read; the log stays where they are.
    page.fill(".pc-input", "And once more, please")
    page.press(".pc-input", "Enter")
    page.wait_for_function(
        "() => (document.querySelectorAll('.pc-msg--assistant')[1]?.innerText || '').length > 200"
    )
    page.locator(".pc-log").hover()
    page.mouse.wheel(0, -400)
    page.wait_for_function("() => !ParlorChat.state().streaming", timeout=60000)
    top = page.evaluate("document.querySelector('.pc-log').scrollTop")
    assert not page.evaluate(AT_BOTTOM), "the log jumped back to the bottom while the visitor read above"
    page.wait_for_timeout(300)  # a late redraw must not move it either
    assert page.evaluate("document.querySelector('.pc-log').scrollTop") == top


def _theme_state(frame: Any) -> dict:
    return frame.evaluate(
        "({theme: document.documentElement.dataset.theme || null,"
        " bg: getComputedStyle(document.documentElement).getPropertyValue('--pc-bg').trim()})"
    )


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_follow_the_visitors_system_ignores_the_host_pages_background(
    live_parlor: LiveParlor, allowed_site: HostPages, new_page: Callable[..., Any], scheme: str
) -> None:
    bot = _bot(allowed_origins=[allowed_site.origin], widget_theme="auto")
    page_background = "#121417" if scheme == "light" else "#ffffff"  # the opposite of the visitor's system
    html = host_page_html(live_parlor.url, bot.public_id).replace(
        "background:#f6f1e7", f"background:{page_background}"
    )
    page = new_page(color_scheme=scheme)
    page.goto(allowed_site.page(f"/system-{scheme}", html))
    page.locator("[data-parlor-widget]").locator("button.l").click()
    frame = page.frame_locator("[data-parlor-widget] iframe")
    frame.locator(".pc-status[data-state='online']").wait_for()
    state = page.locator("[data-parlor-widget] iframe").element_handle().content_frame()
    assert _theme_state(state) == {"theme": None, "bg": "#ffffff" if scheme == "light" else "#15171c"}


def test_follow_the_website_is_a_choice_of_its_own(
    live_parlor: LiveParlor, allowed_site: HostPages, new_page: Callable[..., Any]
) -> None:
    bot = _bot(allowed_origins=[allowed_site.origin], widget_theme="page")
    html = host_page_html(live_parlor.url, bot.public_id).replace("background:#f6f1e7", "background:#121417")
    page = new_page(color_scheme="light")
    page.goto(allowed_site.page("/dark-page", html))
    page.locator("[data-parlor-widget]").locator("button.l").click()
    page.frame_locator("[data-parlor-widget] iframe").locator(".pc-status[data-state='online']").wait_for()
    state = page.locator("[data-parlor-widget] iframe").element_handle().content_frame()
    assert _theme_state(state) == {"theme": "dark", "bg": "#15171c"}
    screenshot(page, "widget-follows-dark-page.png")
