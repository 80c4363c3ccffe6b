"""The analytics dashboard in a real headless Chromium under the admin's Content-Security-Policy: every
chart is drawn, in light and in dark mode, with nothing blocked; the README's screenshots come from here."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from typing import Any

import pytest
from django.utils import timezone

from accounts.tests.factories import PASSWORD, owner_of
from analytics.services import daily_rollup
from analytics.tests.factories import make_bot, make_traffic
from chatbots.testing import LiveParlor, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

REPORT_VIOLATIONS = """
document.addEventListener("securitypolicyviolation", (event) => {
  console.error(`CSP violation: ${event.violatedDirective} blocked ${event.blockedURI || "inline"}`);
});
"""
CHARTS = ("volume", "resolution", "feedback", "speed", "hours", "cost")


def _month_of_traffic() -> Any:
    bot = make_bot(name="Shop helper")
    docs = make_bot(organization=bot.organization, name="Docs helper")
    today = timezone.now().date()
    for offset in range(1, 30):
        day = today - dt.timedelta(days=offset)
        for n in range(1 + offset % 4):
            make_traffic(bot=bot if n % 2 else docs, day=day, channel="api" if n == 3 else "widget")
        daily_rollup(day=day)
    return bot


def test_dashboard_draws_every_chart_in_light_and_dark_mode(
    live_parlor: LiveParlor, new_page: Callable[..., Any]
) -> None:
    bot = _month_of_traffic()
    page = new_page(viewport={"width": 1400, "height": 1300}, color_scheme="light")
    problems: list[str] = []
    page.add_init_script(REPORT_VIOLATIONS)
    page.on("console", lambda message: "CSP violation" in message.text and problems.append(message.text))

    page.goto(f"{live_parlor.url}/accounts/login/")
    page.fill("input[name=login]", owner_of(bot.organization).email)
    page.fill("input[name=password]", PASSWORD)
    page.click("form button[type=submit]")
    page.wait_for_url(re.compile(r"/admin/$"))

    for theme in ("light", "dark"):
        page.emulate_media(color_scheme=theme)
        page.goto(f"{live_parlor.url}/admin/")
        page.wait_for_function("() => window.Chart && document.querySelectorAll('canvas').length === 6")
        drawn = page.evaluate(
            "(ids) => ids.map((id) => !!window.Chart.getChart(document.getElementById(`chart-${id}`)))",
            list(CHARTS),
        )
        assert drawn == [True] * len(CHARTS)
        is_dark = page.evaluate("() => document.documentElement.classList.contains('dark')")
        assert is_dark == (theme == "dark")
        page.get_by_test_id("analytics").scroll_into_view_if_needed()
        screenshot(page, f"admin-analytics-{theme}.png")

    # The period choice applies at once; custom dates appear only for a custom period.
    page.select_option("select[name=range]", "7")
    page.wait_for_url(re.compile(r"range=7"))
    assert not page.locator("input[name=start]").is_visible()
    page.select_option("select[name=range]", "custom")
    assert page.locator("input[name=start]").is_visible()
    assert not problems, problems
