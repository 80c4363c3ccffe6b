"""Parlor's own pages send a Content-Security-Policy and a Permissions-Policy; the widget keeps its own."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from accounts.services import invitation_create
from accounts.tests.factories import make_organization, owner_of
from chatbots.models import Bot

pytestmark = pytest.mark.django_db

# Inline code a CSP without 'unsafe-inline' for scripts blocks: <script> blocks and on* attributes.
INLINE_SCRIPT = re.compile(r"<script(?![^>]*\b(?:src|type=\"application/json\"))[^>]*>|\son[a-z]+\s*=", re.I)


def _directives(response) -> dict[str, str]:
    policy = response["Content-Security-Policy"]
    return {part.split()[0]: part.strip() for part in policy.split(";") if part.strip()}


@pytest.fixture
def owner(db):
    org = make_organization(name="Acme")
    make_organization(name="Second", owner=owner_of(org))  # two organizations: the dashboard's switcher
    return owner_of(org)


def _pages(client: Client, owner) -> dict[str, object]:
    anonymous = Client()
    issued = invitation_create(
        organization=owner.memberships.first().organization,
        email="new@example.com",
        role="member",
        invited_by=owner,
    )
    pages = {
        "sign-in": anonymous.get("/accounts/login/"),
        "sign-up": anonymous.get("/accounts/signup/"),
        "password reset": anonymous.get("/accounts/password/reset/"),
        "invitation": anonymous.get(f"/invitations/{issued.token}/"),
        "api docs": anonymous.get("/api/docs/"),
    }
    client.force_login(owner)
    pages["dashboard"] = client.get("/admin/")
    pages["bots"] = client.get("/admin/chatbots/bot/")
    pages["bot form"] = client.get("/admin/chatbots/bot/add/")
    pages["api key created"] = client.post("/admin/accounts/apikey/add/", {"name": "Website"})
    pages["two-factor"] = client.get("/accounts/2fa/")
    return pages


def test_admin_and_sign_in_pages_send_a_csp_and_a_permissions_policy(client: Client, owner) -> None:
    for name, response in _pages(client, owner).items():
        assert response.status_code == 200, name
        directives = _directives(response)
        assert directives["script-src"] == "script-src 'self' 'unsafe-eval'", name  # no inline script
        assert directives["object-src"] == "object-src 'none'", name
        assert directives["frame-ancestors"] == "frame-ancestors 'none'", name
        assert directives["base-uri"] == "base-uri 'self'", name
        assert "camera=()" in response["Permissions-Policy"], name
        assert "microphone=()" in response["Permissions-Policy"], name


def test_admin_and_sign_in_pages_contain_no_inline_script(client: Client, owner) -> None:
    for name, response in _pages(client, owner).items():
        html = response.content.decode()
        assert not INLINE_SCRIPT.search(html), (name, INLINE_SCRIPT.search(html))


def test_the_widget_pages_keep_their_own_policy(client: Client) -> None:
    org = make_organization(name="Shop")
    bot = Bot.objects.create(organization=org, name="Helper", allowed_origins=["https://shop.example"])
    frame = client.get(f"/widget/{bot.public_id}/")
    assert frame["Content-Security-Policy"].endswith("frame-ancestors https://shop.example")
    assert "'unsafe-eval'" not in frame["Content-Security-Policy"]
    page = client.get(f"/chat/{bot.public_id}/")
    assert page["Content-Security-Policy"].endswith("frame-ancestors 'self'")
    assert "Content-Security-Policy-Report-Only" not in page


def test_the_policy_can_be_tried_in_report_only_mode(client: Client, settings) -> None:
    settings.CONTENT_SECURITY_POLICY_REPORT_ONLY = True
    response = client.get("/accounts/login/")
    assert "Content-Security-Policy" not in response
    assert "script-src 'self'" in response["Content-Security-Policy-Report-Only"]
