from __future__ import annotations

import re

import pytest
from django.core import mail
from django.urls import reverse

from accounts.models import Membership, Role, User
from accounts.tests.factories import PASSWORD, make_user

pytestmark = pytest.mark.django_db

SIGNUP = {
    "full_name": "Ada Lovelace",
    "email": "ada@example.com",
    "organization_name": "Analytical Engines",
    "password1": PASSWORD,
    "password2": PASSWORD,
}


def _link(message) -> str:
    return re.search(r"https?://[^\s]+", message.body).group(0)


def test_signup_creates_organization_with_the_user_as_owner(client):
    response = client.post(reverse("account_signup"), SIGNUP)
    assert response.status_code == 302
    user = User.objects.get(email="ada@example.com")
    membership = Membership.objects.get(user=user)
    assert membership.role == Role.OWNER
    assert membership.organization.name == "Analytical Engines"
    assert user.full_name == "Ada Lovelace"


def test_signup_requires_email_verification_before_the_admin(client):
    client.post(reverse("account_signup"), SIGNUP)
    assert client.get(reverse("admin:index")).status_code != 200  # not signed in yet
    assert len(mail.outbox) == 1
    confirm_url = _link(mail.outbox[0])
    assert "/accounts/confirm-email/" in confirm_url
    assert client.get(confirm_url).status_code == 200
    response = client.post(confirm_url)
    assert response.status_code == 302
    dashboard = client.get(reverse("admin:index"))
    assert dashboard.status_code == 200
    assert b"Analytical Engines" in dashboard.content


def test_unverified_user_cannot_sign_in(client):
    client.post(reverse("account_signup"), SIGNUP)
    client.logout()
    mail.outbox.clear()
    response = client.post(reverse("account_login"), {"login": SIGNUP["email"], "password": PASSWORD})
    assert response.status_code == 302
    assert "confirm-email" in response["Location"]
    assert client.get(reverse("admin:index")).status_code == 302


def test_signup_without_organization_name_uses_a_default(client):
    client.post(reverse("account_signup"), {**SIGNUP, "organization_name": ""})
    assert (
        Membership.objects.get(user__email="ada@example.com").organization.name
        == "Ada Lovelace's organization"
    )


def test_verified_user_signs_in_and_reaches_the_dashboard(client, org_a, owner_a):
    response = client.post(reverse("account_login"), {"login": owner_a.email, "password": PASSWORD})
    assert response.status_code == 302
    assert response["Location"] == "/admin/"
    assert client.get("/admin/").status_code == 200


def test_admin_login_page_redirects_to_the_account_login(client):
    response = client.get("/admin/login/?next=/admin/")
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("account_login"))


def test_failed_logins_are_rate_limited(client, owner_a):
    for _ in range(5):
        client.post(reverse("account_login"), {"login": owner_a.email, "password": "wrong-password"})
    # the correct password is refused too while the limit holds
    response = client.post(reverse("account_login"), {"login": owner_a.email, "password": PASSWORD})
    assert response.status_code == 200
    assert b"Too many failed login attempts" in response.content
    assert "_auth_user_id" not in client.session


def test_password_reset_mails_a_working_link(client, owner_a):
    response = client.post(reverse("account_reset_password"), {"email": owner_a.email})
    assert response.status_code == 302
    link = _link(mail.outbox[-1])
    page = client.get(link, follow=True)
    assert page.status_code == 200
    new_password = "another-long-secret-42"
    form_url = page.redirect_chain[-1][0] if page.redirect_chain else link
    response = client.post(form_url, {"password1": new_password, "password2": new_password})
    assert response.status_code == 302
    owner_a.refresh_from_db()
    assert owner_a.check_password(new_password)


def test_password_change_requires_the_old_password(client, owner_a):
    client.force_login(owner_a)
    url = reverse("account_change_password")
    bad = client.post(
        url, {"oldpassword": "nope", "password1": "x-new-secret-123", "password2": "x-new-secret-123"}
    )
    assert bad.status_code == 200
    good = client.post(
        url, {"oldpassword": PASSWORD, "password1": "x-new-secret-123", "password2": "x-new-secret-123"}
    )
    assert good.status_code == 302
    owner_a.refresh_from_db()
    assert owner_a.check_password("x-new-secret-123")


def test_email_change_adds_an_address_that_must_be_verified(client, owner_a):
    client.force_login(owner_a)
    response = client.post(reverse("account_email"), {"action_add": "", "email": "new@example.com"})
    assert response.status_code == 302
    assert any("new@example.com" in m.to for m in mail.outbox)


def test_two_factor_page_is_available(client, owner_a):
    client.force_login(owner_a)
    response = client.get(reverse("mfa_activate_totp"))
    assert response.status_code in (200, 302)  # allauth may ask to re-authenticate first


def test_user_without_organization_is_not_admitted_to_the_admin(client):
    client.force_login(make_user())
    assert client.get("/admin/").status_code == 302


def test_operator_created_from_the_command_line_signs_in_without_verification(client):
    User.objects.create_superuser(email="ops@example.com", password=PASSWORD)
    response = client.post(reverse("account_login"), {"login": "ops@example.com", "password": PASSWORD})
    assert response.status_code == 302 and response["Location"] == "/admin/"
    assert client.get("/admin/").status_code == 200
