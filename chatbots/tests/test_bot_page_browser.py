"""The bot's admin page in a real browser: it stays at the top on load and after saving (the preview's chat
input does not take focus), the form is in tabs with the live preview beside it, the "saved" message is in
view, and a website the widget refused can be allowed from the page.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client

from accounts.tests.factories import make_organization, owner_of
from chatbots.models import Bot
from chatbots.origins import refused_origin_record
from chatbots.testing import LiveParlor, admin_tab, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

TABS = ["Basics", "Knowledge", "Model", "Fallback model", "Widget", "Embed"]


def _signed_in_page(live_parlor: LiveParlor, new_page: Callable[..., Any], org) -> Any:
    client = Client()
    client.force_login(owner_of(org))
    page = new_page(viewport={"width": 1440, "height": 900})
    page.context.add_cookies(
        [{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": live_parlor.url}]
    )
    return page


def _settled(page: Any) -> None:
    """The preview has loaded and connected (when it used to steal the focus and scroll the page)."""
    page.frame_locator("[data-parlor-frame]").locator(".pc-status[data-state='online']").wait_for()
    page.wait_for_timeout(500)


# One test on purpose: the live server caches content types (admin log entries), which the flushed database
# of a second test in this module would no longer have.
def test_bot_page_stays_at_the_top_with_tabs_beside_the_preview_shows_saved_and_allows_a_refused_site(
    live_parlor: LiveParlor, new_page: Callable[..., Any]
) -> None:
    org = make_organization(name="Tabs Org")
    bot = Bot.objects.create(organization=org, name="Tabbed", allowed_origins=["https://shop.example.com"])
    page = _signed_in_page(live_parlor, new_page, org)
    page.goto(f"{live_parlor.url}/admin/chatbots/bot/{bot.pk}/change/")
    _settled(page)
    assert page.evaluate("window.scrollY") == 0
    assert page.evaluate("document.activeElement.tagName") != "IFRAME"
    for name in TABS:
        assert admin_tab(page, name).inner_text().strip() == name
    form_box = page.locator("input[name=name]").bounding_box()
    preview_box = page.locator("[data-parlor-frame]").bounding_box()
    assert preview_box["x"] > form_box["x"] + form_box["width"] - 1  # beside the form, not below it
    assert preview_box["y"] < 600  # in view without scrolling
    screenshot(page, "admin-bot-tabs.png")

    page.fill("input[name=name]", "Tabbed and renamed")
    page.locator("[name=_continue]").click()
    page.wait_for_load_state()
    message = page.get_by_text("was changed successfully")
    message.wait_for(timeout=60000)
    _settled(page)
    assert page.evaluate("window.scrollY") == 0
    assert message.is_visible() and message.bounding_box()["y"] < 900
    bot.refresh_from_db()
    assert bot.name == "Tabbed and renamed"

    # A website the widget refused shows on the Widget tab and is allowed from there.
    refused_origin_record(bot=bot, origin="https://www.shop.example.com")
    page.reload()
    _settled(page)
    admin_tab(page, "Widget").click()
    assert "https://www.shop.example.com" in page.locator("[data-parlor-refused]").inner_text()
    page.get_by_role("button", name="Allow this website").click()
    assert page.input_value("textarea[name=allowed_origins]").splitlines() == [
        "https://shop.example.com",
        "https://www.shop.example.com",
    ]
    screenshot(page, "admin-bot-refused-websites.png")
    page.locator("[name=_continue]").click()
    page.get_by_text("was changed successfully").wait_for(timeout=60000)
    bot.refresh_from_db()
    assert bot.allowed_origins == ["https://shop.example.com", "https://www.shop.example.com"]
    admin_tab(page, "Widget").click()
    assert "No website was refused lately" in page.locator("[data-parlor-refused]").inner_text()
