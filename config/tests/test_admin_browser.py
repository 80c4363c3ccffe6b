"""The admin and sign-in pages under their Content-Security-Policy in a real headless Chromium.

Sign in, switch organizations, try a bot in its live preview, create an API key and copy it, watch a
knowledge list and open the API docs, on a live Parlor (Daphne subprocess): the policy must block
nothing these pages need (no violation reported, no script error).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest

from accounts.tests.factories import PASSWORD, make_organization, owner_of
from chatbots.models import Bot
from chatbots.testing import LiveParlor, admin_tab

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# Chromium reports a violation as a DOM event; the page's own console carries it to the test.
REPORT_VIOLATIONS = """
document.addEventListener("securitypolicyviolation", (event) => {
  console.error(`CSP violation: ${event.violatedDirective} blocked ${event.blockedURI || "inline"} `
    + `at ${event.sourceFile}:${event.lineNumber}`);
});
"""
POLICY_PROBLEM = re.compile(r"CSP violation|Content Security Policy|Permissions.Policy|Refused to", re.I)


def _watched_page(new_page: Callable[..., Any]) -> tuple[Any, list[str]]:
    page = new_page(viewport={"width": 1400, "height": 1000})
    problems: list[str] = []
    page.add_init_script(REPORT_VIOLATIONS)
    page.on("console", lambda message: POLICY_PROBLEM.search(message.text) and problems.append(message.text))
    return page, problems


def test_admin_works_under_its_content_security_policy(
    live_parlor: LiveParlor, new_page: Callable[..., Any]
) -> None:
    org = make_organization(name="Policy Org")
    make_organization(name="Second Org", owner=owner_of(org))
    owner = owner_of(org)
    bot = Bot.objects.create(organization=org, name="Previewed", greeting="Hello from the preview!")
    page, problems = _watched_page(new_page)
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_parlor.url)

    # Sign in through allauth's page.
    response = page.goto(f"{live_parlor.url}/accounts/login/")
    assert "script-src 'self'" in response.headers["content-security-policy"]
    assert "camera=()" in response.headers["permissions-policy"]
    page.fill("input[name=login]", owner.email)
    page.fill("input[name=password]", PASSWORD)
    page.click("form button[type=submit]")
    page.wait_for_url(re.compile(r"/admin/$"))

    # The dashboard: Unfold's Alpine components run, the organization switcher submits on change.
    assert page.get_by_test_id("organization-name").inner_text() == "Policy Org"
    for name in ("Second Org", "Policy Org"):
        page.select_option("#organization-switch", label=name)
        page.get_by_test_id("organization-name").filter(has_text=name).wait_for()

    # The bot form frames Parlor's own chat page as a live preview, connected over the WebSocket.
    page.goto(f"{live_parlor.url}/admin/chatbots/bot/{bot.pk}/change/")
    preview = page.frame_locator("[data-parlor-frame]")
    preview.locator(".pc-status[data-state='online']").wait_for()
    admin_tab(page, "Widget").click()  # the form's tabs are Alpine components too
    page.fill("input[name=widget_title]", "Shiny new title")
    for _ in range(50):
        if preview.locator(".pc-title").inner_text() == "Shiny new title":
            break
        page.wait_for_timeout(100)
    assert preview.locator(".pc-title").inner_text() == "Shiny new title"

    # A new API key is shown once, with a working copy button.
    page.goto(f"{live_parlor.url}/admin/accounts/apikey/add/")
    page.fill("input[name=name]", "Website")
    page.click("button[name=_save]")
    key = page.get_by_test_id("api-key-value").input_value()
    # (The page itself may not read the clipboard; record what the button writes instead.)
    page.evaluate(
        """() => {
          const write = navigator.clipboard.writeText.bind(navigator.clipboard);
          navigator.clipboard.writeText = (text) => write(text).then(() => { window.copied = text; });
        }"""
    )
    page.get_by_role("button", name="Copy").click()
    page.get_by_role("button", name="Copied").wait_for()
    for _ in range(50):
        if page.evaluate("() => window.copied"):
            break
        page.wait_for_timeout(100)
    assert page.evaluate("() => window.copied") == key

    # Lists with their scripts (the knowledge status poller) and the API docs (Swagger UI).
    page.goto(f"{live_parlor.url}/admin/knowledge/knowledgesource/")
    page.goto(f"{live_parlor.url}/admin/chatbots/bot/")
    assert "Previewed" in page.content()
    page.goto(f"{live_parlor.url}/api/docs/")
    page.locator(".swagger-ui .info .title").wait_for()
    assert "Parlor API" in page.locator(".swagger-ui .info .title").inner_text()

    assert not problems, problems
