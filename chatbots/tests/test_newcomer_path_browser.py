"""A newcomer's first ten minutes, in a real browser against Parlor started the way the README says.

``manage.py up`` runs (web, worker) on this test run's database and prints the demo credentials; the
newcomer signs in with them, creates a bot, adds a knowledge source and waits for the worker to process
it, copies the embed code into their own website (another origin) and chats with the bot there. Each step
is screenshotted into docs/screenshots/ (first-run-*.png), and none of the first-run stumbles shows.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from chatbots.models import Bot
from chatbots.testing import HostPages, admin_tab, host_page_html, start_up

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow_process,
    pytest.mark.django_db(transaction=True),
    pytest.mark.timeout(600),  # a whole first run: start-up, the worker's first embedding, shutdown
]

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
KNOWLEDGE = (
    "Opening hours\n\nThe Lakeside bakery is open Tuesday to Sunday from 7 am to 6 pm. "
    "On Mondays the bakery is closed. Sourdough bread comes out of the oven at 8 am every day."
)


def _shot(page: Any, name: str) -> None:
    page.screenshot(path=str(SCREENSHOTS / f"first-run-{name}.png"))


def test_newcomer_runs_parlor_signs_in_creates_a_bot_adds_knowledge_embeds_and_chats(
    tmp_path: Path, new_page: Callable[..., Any], allowed_site: HostPages
) -> None:
    parlor = start_up(tmp_path)
    try:
        # 1. Run: the command says what it does, then where Parlor is, once it answers.
        text = parlor.wait_for_output("Press Ctrl-C to stop.")
        assert "==> Applying database migrations" in text
        base = re.search(r"Parlor is ready at (\S+)/", text).group(1)
        email = re.search(r"E-mail:\s+(\S+)", text).group(1)
        password = re.search(r"Password:\s+(\S+)", text).group(1)
        page = new_page(viewport={"width": 1200, "height": 760})

        # 2. The address leads to a page, not a 404; from there to the sign-in form.
        page.goto(f"{base}/")
        assert "knowledge" in page.locator("main").inner_text()
        _shot(page, "1-landing")
        page.get_by_role("link", name="Sign in").first.click()
        page.fill("input[name=login]", email)
        page.fill("input[name=password]", password)
        _shot(page, "2-sign-in")
        page.locator("form button[type=submit]").first.click()
        page.wait_for_url(re.compile(r"/admin/"))
        # A customer's admin: the demo organization's, with no operator models in the sidebar.
        assert "Demo Company" in page.locator("body").inner_text()
        assert page.locator("a[href='/admin/accounts/user/']").count() == 0
        _shot(page, "3-dashboard")

        # 3. Create a bot that may be embedded on the newcomer's website.
        page.goto(f"{base}/admin/chatbots/bot/add/")
        page.fill("input[name=name]", "Bakery helper")
        admin_tab(page, "Widget").click()
        page.fill("textarea[name=allowed_origins]", allowed_site.origin)
        page.locator("[name=_continue]").click()
        page.get_by_text("was added successfully").wait_for(timeout=60000)
        assert page.evaluate("window.scrollY") == 0  # the message is in view: no jump to the preview
        page.frame_locator("[data-parlor-frame]").locator(".pc-status[data-state='online']").wait_for()
        _shot(page, "4-bot-created")
        bot = Bot.objects.get(name="Bakery helper")

        # 4. Add a knowledge source; the worker processes it and the admin shows it ready.
        page.goto(f"{base}/admin/knowledge/source/add/")
        page.select_option("select[name=kind]", "text")
        page.fill("input[name=title]", "Opening hours")
        page.fill("textarea[name=text]", KNOWLEDGE)
        page.locator("[name=_continue]").click()
        page.get_by_text("was added successfully").wait_for(timeout=60000)
        for _ in range(120):
            if "Ready" in page.locator("body").inner_text():
                break
            page.wait_for_timeout(1000)
            page.reload()
        assert "Ready" in page.locator("body").inner_text()
        _shot(page, "5-source-ready")

        # ... and let the bot answer from it.
        page.goto(f"{base}/admin/chatbots/bot/{bot.pk}/change/")
        admin_tab(page, "Knowledge").click()
        page.select_option("select[name=sources]", label="Opening hours")
        page.locator("[name=_continue]").click()
        page.get_by_text("was changed successfully").wait_for(timeout=60000)
        assert list(bot.sources.values_list("title", flat=True)) == ["Opening hours"]

        # 5. Embed: the code from the bot's Embed tab goes into the newcomer's own page.
        admin_tab(page, "Embed").click()
        snippet = page.input_value("[data-parlor-snippet]")
        assert f'data-bot="{bot.public_id}"' in snippet and f"{base}/widget.js" in snippet
        _shot(page, "6-embed-code")
        html = host_page_html(base, bot.public_id, title="Lakeside Bakery")
        html = re.sub(r"<script src=[^>]*></script>", snippet, html)

        # 6. Chat on that website.
        site = new_page(viewport={"width": 1200, "height": 760})
        site.goto(allowed_site.page("/", html))
        site.locator("[data-parlor-widget]").locator("button.l").click()
        frame = site.frame_locator("[data-parlor-widget] iframe")
        frame.locator(".pc-status[data-state='online']").wait_for(timeout=60000)
        frame.locator(".pc-input").fill("When is the bakery open?")
        frame.locator(".pc-input").press("Enter")
        frame.locator(".pc-msg--assistant .pc-actions").wait_for(timeout=90000)
        answer = frame.locator(".pc-msg--assistant").last.inner_text()
        assert "Tuesday to Sunday" in answer
        assert "Opening hours" in answer  # its source
        _shot(site, "7-chat")
    finally:
        left_behind = parlor.stop()
    assert left_behind == []
