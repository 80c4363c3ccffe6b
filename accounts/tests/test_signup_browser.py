"""A new customer's path in a real headless Chromium: sign up, verify by mail, invite a member."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator

import pytest
from django.core import mail

from accounts.models import Membership, Role

CHROMIUM = os.environ.get("PARLOR_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
PASSWORD = "a-long-and-unusual-passphrase-7"

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def browser(monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"no Chromium at {CHROMIUM}")
    # Playwright's sync API keeps an event loop in this thread; the ORM calls here are still synchronous.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def _last_link(path_part: str) -> str:
    for message in reversed(mail.outbox):
        match = re.search(r"https?://\S*" + re.escape(path_part) + r"\S*", message.body)
        if match:
            return match.group(0)
    raise AssertionError(f"no mail with a {path_part} link in {[m.subject for m in mail.outbox]}")


def test_new_customer_signs_up_verifies_and_invites_a_member_who_cannot_create_bots(live_server, browser):
    owner = browser.new_context().new_page()
    owner.set_default_timeout(20_000)

    # 1. sign up
    owner.goto(f"{live_server.url}/accounts/signup/")
    owner.fill("input[name=full_name]", "Grace Hopper")
    owner.fill("input[name=email]", "grace@example.com")
    owner.fill("input[name=organization_name]", "Compilers Inc")
    owner.fill("input[name=password1]", PASSWORD)
    owner.fill("input[name=password2]", PASSWORD)
    owner.click("form button[type=submit]")
    owner.wait_for_url(re.compile(r"/accounts/confirm-email/"))
    assert "verify" in owner.content().lower()

    # 2. follow the verification link from the mail outbox and confirm
    owner.goto(_last_link("/accounts/confirm-email/"))
    owner.click("form button[type=submit]")
    owner.wait_for_url(re.compile(r"/admin/$"))

    # 3. the admin dashboard of the new organization
    assert owner.get_by_test_id("organization-name").inner_text() == "Compilers Inc"
    assert "owner" in owner.content()

    # 4. invite a second person as member
    owner.get_by_test_id("invite-link").click()
    owner.fill("input[name=email]", "linus@example.com")
    owner.select_option("select[name=role]", "member")
    owner.click("button[name=_save]")
    owner.wait_for_url(re.compile(r"/admin/accounts/invitation/$"))
    assert "linus@example.com" in owner.content()

    # 5. the invitee follows the link, signs up (no second verification: the link proved the address)
    invitee = browser.new_context().new_page()
    invitee.set_default_timeout(20_000)
    invitee.goto(_last_link("/invitations/"))
    assert "Compilers Inc" in invitee.content()
    invitee.get_by_test_id("invitation-signup").click()
    invitee.wait_for_url(re.compile(r"/accounts/signup/"))
    assert invitee.input_value("input[name=email]") == "linus@example.com"
    invitee.fill("input[name=full_name]", "Linus")
    invitee.fill("input[name=password1]", PASSWORD)
    invitee.fill("input[name=password2]", PASSWORD)
    invitee.click("form button[type=submit]")
    invitee.wait_for_url(re.compile(r"/admin/$"))
    assert invitee.get_by_test_id("organization-name").inner_text() == "Compilers Inc"
    assert "member" in invitee.content()
    membership = Membership.objects.get(user__email="linus@example.com")
    assert membership.role == Role.MEMBER and membership.organization.name == "Compilers Inc"

    # 6. a member can look at bots but cannot create one
    invitee.goto(f"{live_server.url}/admin/chatbots/bot/")
    assert invitee.locator("a[href$='/admin/chatbots/bot/add/']").count() == 0
    response = invitee.goto(f"{live_server.url}/admin/chatbots/bot/add/")
    assert response.status == 403
