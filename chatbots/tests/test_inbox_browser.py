"""The inbox in a real browser against a live Parlor (Daphne subprocess, Celery worker, headless
Chromium): a visitor gets a wrong answer and rates it down in the chat; the owner sees it in the review
queue, finds the conversation by the thumbs-down filter, opens the transcript, improves the answer; the
visitor asks again and gets the new answer, and the queue is empty. Screenshots of the inbox, the
transcript and the review queue go to test-artifacts/."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.test import Client

from accounts.tests.factories import make_organization, owner_of
from chatbots.llm.testserver import FakeLLMServer
from chatbots.models import Bot, Message, MessageRole
from chatbots.testing import LiveParlor, screenshot
from chatbots.tests.factories import teach_bot
from knowledge.models import FaqPair, Source, SourceKind, SourceStatus

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

QUESTION = "Can I rent a tent for the weekend?"
WRONG = "We only sell boots."
RIGHT = "Yes: tents for 2 to 6 people, 25 EUR a weekend, from our Main Street shop."


@pytest.fixture(scope="module")
def llm() -> Iterator[FakeLLMServer]:
    server = FakeLLMServer().start()
    yield server
    server.stop()


def ask(page: Any, text: str) -> str:
    """Ask on the bot's chat page and wait for the finished answer (its feedback buttons appear)."""
    before = page.locator(".pc-msg--assistant .pc-actions").count()
    page.fill(".pc-input", text)
    page.press(".pc-input", "Enter")
    page.wait_for_function(
        f"() => document.querySelectorAll('.pc-msg--assistant .pc-actions').length > {before}", timeout=30000
    )
    return page.locator(".pc-msg--assistant").last.inner_text()


def wait_until(condition: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError("timed out")


def test_owner_finds_a_thumbs_down_improves_it_and_the_visitor_gets_the_new_answer(
    live_parlor: LiveParlor, new_page: Callable[..., Any], llm: FakeLLMServer, celery_worker: object
) -> None:
    organization = make_organization(name="Acme Outdoor")
    bot = Bot.objects.create(organization=organization, name="Acme helper", widget_title="Acme Outdoor")
    teach_bot(bot, llm_base_url=llm.base_url, reply=WRONG)

    visitor = new_page()
    visitor.goto(f"{live_parlor.url}/chat/{bot.public_id}/")
    visitor.wait_for_selector(".pc-status[data-state='online']")
    assert WRONG in ask(visitor, QUESTION)
    visitor.locator(".pc-msg--assistant").last.get_by_role("button", name="Not helpful").click()
    answer = Message.objects.get(conversation__bot=bot, role=MessageRole.ASSISTANT)
    wait_until(lambda: Message.objects.get(pk=answer.pk).feedback == "down")  # sent over the socket
    Message.objects.filter(pk=answer.pk).update(feedback_comment="They rent tents!")  # the API's comment

    client = Client()
    client.force_login(owner_of(organization))
    owner = new_page(viewport={"width": 1400, "height": 1000})
    owner.context.add_cookies(
        [{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": live_parlor.url}]
    )
    owner.goto(f"{live_parlor.url}/admin/")
    owner.get_by_role("link", name="Review queue").first.click()  # from the sidebar
    group = owner.locator("[data-review-group]").first
    assert QUESTION in group.inner_text() and "Thumbs down" in group.inner_text()
    screenshot(owner, "review-queue.png")

    owner.goto(f"{live_parlor.url}/admin/chatbots/conversation/?feedback=down")
    row = owner.locator("#result_list tbody tr").first
    assert QUESTION in row.inner_text() and "THUMBS DOWN" in row.inner_text().upper()
    screenshot(owner, "inbox.png")

    row.get_by_role("link", name=QUESTION).click()
    owner.wait_for_selector("[data-transcript]")
    assert "They rent tents!" in owner.locator("[data-transcript]").inner_text()
    screenshot(owner, "inbox-transcript.png")
    owner.get_by_role("link", name="Improve this answer").click()
    assert owner.locator("input[name=question]").input_value() == QUESTION
    owner.fill("textarea[name=answer]", RIGHT)
    owner.get_by_role("button", name="Save as FAQ answer").click()
    owner.wait_for_selector("[data-transcript]")
    assert "Improved answers" in owner.locator("[data-improved]").inner_text()

    source = Source.objects.get(organization=organization, kind=SourceKind.FAQ)
    wait_until(lambda: Source.objects.get(pk=source.pk).status == SourceStatus.READY)  # the ingestion job
    visitor.reload()
    visitor.wait_for_selector(".pc-status[data-state='online']")
    # The conversation's history (the rated answer) is drawn first: ask() counts answers from there.
    visitor.wait_for_selector(".pc-msg--assistant .pc-actions")
    assert RIGHT in ask(visitor, QUESTION)
    assert FaqPair.objects.get(source=source).answered_count == 1
    owner.goto(f"{live_parlor.url}/admin/chatbots/reviewqueueentry/")
    assert (
        "Nothing needs attention" in owner.locator("[data-review-queue]").inner_text()
    )  # improved: resolved
