from __future__ import annotations

import pytest
from django.core import mail
from django.urls import reverse

from accounts.services import invitation_create
from accounts.tests.factories import PASSWORD, make_organization, make_user

pytestmark = pytest.mark.django_db

SIGNUP = {
    "full_name": "Ada Lovelace",
    "email": "ada@example.com",
    "organization_name": "Analytical Engines",
    "password1": PASSWORD,
    "password2": PASSWORD,
}


@pytest.fixture
def site(settings):
    settings.SITE_NAME = "Acme Bots"
    settings.SITE_URL = "https://bots.acme.example"
    return settings


def _html(message) -> str:
    (html, kind), *_ = message.alternatives
    assert kind == "text/html"
    return html


def test_verification_mail_names_the_product_and_the_site_address_not_the_request_host(client, site):
    client.post(reverse("account_signup"), SIGNUP)  # the request's host is "testserver"
    (message,) = mail.outbox
    assert message.subject.startswith("[Parlor] ")  # the prefix is read once, at start-up
    assert "Hello from Acme Bots!" in message.body
    assert "https://bots.acme.example/" in message.body
    assert "testserver!" not in message.body and "Hello from testserver" not in message.body
    html = _html(message)
    assert "Acme Bots" in html and 'href="https://bots.acme.example/"' in html
    assert "<a " in html  # the confirmation link is clickable in the HTML part


def test_invitation_mail_is_text_and_html_with_the_product_name(site, django_capture_on_commit_callbacks):
    owner = make_user()
    organization = make_organization(name="Analytical Engines", owner=owner)
    with django_capture_on_commit_callbacks(execute=True):
        invitation_create(organization=organization, email="new@example.com", invited_by=owner)
    (message,) = mail.outbox
    assert message.subject == "[Acme Bots] You are invited to join Analytical Engines"
    assert "on Acme Bots as" in message.body and "https://bots.acme.example/" in message.body
    html = _html(message)
    assert "Analytical Engines" in html and "https://bots.acme.example/invitations/" in html
