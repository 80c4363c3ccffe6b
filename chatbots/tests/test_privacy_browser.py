"""A visitor's e-mail request answered from the admin in a real headless Chromium: sign in, find the visitor
by e-mail, see what is held, erase it — two clicks after typing — and a real Celery worker does it."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

import pytest

from accounts.tests.factories import PASSWORD, owner_of
from chatbots.models import Conversation, DataSubjectRequest, SubjectRequestStatus
from chatbots.testing import LiveParlor
from chatbots.tests.factories import make_bot, make_conversation, make_message

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
EMAIL = "browser.visitor@example.com"


def test_owner_erases_a_visitor_found_by_email_in_two_clicks(
    live_parlor: LiveParlor, new_page: Callable[..., Any], celery_worker: object
) -> None:
    bot = make_bot(name="Support")
    first = make_conversation(bot=bot, visitor_id="v-browser", visitor_attributes={"email": EMAIL})
    make_message(conversation=first, text="Please delete everything about me")
    make_message(conversation=make_conversation(bot=bot, visitor_id="v-browser"), text="An older question")
    kept = make_conversation(bot=bot, visitor_id="v-someone-else")
    make_message(conversation=kept, text="Keep me")

    page = new_page(viewport={"width": 1400, "height": 1000})
    page.goto(f"{live_parlor.url}/accounts/login/")
    page.fill("input[name=login]", owner_of(bot.organization).email)
    page.fill("input[name=password]", PASSWORD)
    page.click("form button[type=submit]")
    page.wait_for_url(re.compile(r"/admin/$"))

    page.goto(f"{live_parlor.url}/admin/chatbots/datasubjectrequest/add/")
    page.fill("input[name=identifier]", EMAIL)
    page.get_by_role("button", name="Find").click()  # first click
    found = page.get_by_test_id("found")
    found.wait_for()
    assert "2 conversations" in found.inner_text() and "2 messages" in found.inner_text()
    page.get_by_role("button", name="Erase their data").click()  # second click
    page.wait_for_url(re.compile(r"/admin/chatbots/datasubjectrequest/$"))
    assert "being erased" in page.content()

    deadline = time.monotonic() + 60
    while DataSubjectRequest.objects.get().status != SubjectRequestStatus.DONE:
        assert time.monotonic() < deadline, "the erasure did not finish"
        time.sleep(0.2)
    page.reload()
    assert "b…@e…" in page.content()  # the request is listed masked, never with the address
    assert EMAIL not in page.content()
    assert list(Conversation.objects.values_list("pk", flat=True)) == [kept.pk]
