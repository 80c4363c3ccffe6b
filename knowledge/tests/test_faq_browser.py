"""An owner who is not a superuser adds FAQ pairs by hand on the source page in a real browser (live
Parlor, Celery worker, headless Chromium): the form shows only the FAQ's fields, the pairs are typed into
the inline rows, the source is attached to a bot there, its status turns Ready with its counts without a
reload, and the bot answers with the pair."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client

from accounts.tests.factories import make_organization, owner_of
from chatbots.models import Bot
from chatbots.testing import LiveParlor, screenshot
from knowledge.models import FaqPair, Source, SourceKind
from knowledge.tests.factories import make_source

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PAIRS = [
    ("Do you repair tents?", "Yes, our workshop repairs any tent for free within two years."),
    ("Where is your shop?", "At 12 Main Street, open Monday to Saturday from nine to six."),
]


def _signed_in(page: Any, live_parlor: LiveParlor, user: Any) -> None:
    client = Client()
    client.force_login(user)
    page.context.add_cookies(
        [{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": live_parlor.url}]
    )


def test_owner_adds_faq_pairs_by_hand_and_the_bot_answers_with_them(
    live_parlor: LiveParlor, new_page: Callable[..., Any], celery_worker: object
) -> None:
    organization = make_organization(name="Acme Outdoor")
    owner = owner_of(organization)
    assert not owner.is_superuser
    bot = Bot.objects.create(organization=organization, name="Acme helper")

    page = new_page(viewport={"width": 1400, "height": 1000})
    _signed_in(page, live_parlor, owner)
    page.goto(f"{live_parlor.url}/admin/knowledge/source/add/")
    page.select_option("select[name=kind]", "faq")
    # Only the FAQ's fields: no file, address or text to fill in (Alpine shows and hides them on change).
    page.locator("input[name=faq_csv]").wait_for(state="visible")
    for hidden in ("input[name=url]", "textarea[name=text]", "input[name=file]"):
        page.locator(hidden).wait_for(state="hidden")
    page.fill("input[name=title]", "Shop FAQ")
    page.get_by_label("Acme helper").check()

    page.get_by_role("link", name="FAQ pairs").first.click()
    page.fill("textarea[name='faq_pairs-0-question'], input[name='faq_pairs-0-question']", PAIRS[0][0])
    page.fill("textarea[name='faq_pairs-0-answer'], input[name='faq_pairs-0-answer']", PAIRS[0][1])
    page.get_by_text("Add another FAQ pair").first.click()
    page.fill("textarea[name='faq_pairs-1-question'], input[name='faq_pairs-1-question']", PAIRS[1][0])
    page.fill("textarea[name='faq_pairs-1-answer'], input[name='faq_pairs-1-answer']", PAIRS[1][1])
    screenshot(page, "source-faq-form.png")
    page.locator("button[name=_save]").first.click()

    # The list: the new source's status turns Ready, with its chunks counted, without a reload.
    page.wait_for_selector("#result_list")
    source = Source.objects.get(organization=organization, title="Shop FAQ")
    pill = page.locator(f"[data-source-status='{source.pk}']")
    page.wait_for_function(
        f"() => document.querySelector(\"[data-source-status='{source.pk}']\").dataset.state === 'ready'"
        f" || document.querySelector(\"[data-source-status='{source.pk}']\").textContent.trim() === 'Ready'",
        timeout=90000,
    )
    assert pill.inner_text().strip() == "Ready"
    source.refresh_from_db()
    assert source.kind == SourceKind.FAQ and source.chunk_count > 0
    count = page.locator(f"[data-source-count='{source.pk}'][data-field='chunk_count']").inner_text()
    assert count == str(source.chunk_count)
    assert "Acme helper" in page.locator("#result_list").inner_text()
    screenshot(page, "source-list-ready.png")

    # A source still processing when the list was drawn: its pill and counts follow without a reload.
    pending = make_source(organization=organization, title="Handbook", status="processing", progress=40)
    page.reload()
    page.wait_for_selector(f"[data-source-status='{pending.pk}'][class*='source-status-processing']")
    Source.objects.filter(pk=pending.pk).update(status="ready", progress=100, chunk_count=7, token_count=900)
    page.wait_for_selector(f"[data-source-status='{pending.pk}'].source-status-ready", timeout=30000)
    assert page.locator(f"[data-source-count='{pending.pk}'][data-field='token_count']").inner_text() == "900"

    assert sorted(FaqPair.objects.filter(source=source).values_list("question", "answer")) == sorted(PAIRS)
    assert list(source.bots.all()) == [bot]

    visitor = new_page()
    visitor.goto(f"{live_parlor.url}/chat/{bot.public_id}/")
    visitor.wait_for_selector(".pc-status[data-state='online']")
    visitor.fill(".pc-input", PAIRS[0][0])
    visitor.press(".pc-input", "Enter")
    visitor.wait_for_function(
        "() => document.querySelectorAll('.pc-msg--assistant .pc-actions').length > 0", timeout=30000
    )
    assert PAIRS[0][1] in visitor.locator(".pc-msg--assistant").last.inner_text()
