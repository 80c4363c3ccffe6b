from __future__ import annotations

import re
from datetime import timedelta

import pytest
from allauth.account.models import EmailAddress
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from accounts.deletion import organization_delete
from accounts.exceptions import InvitationInvalid, PermissionDenied
from accounts.models import Invitation, Membership, Role, User
from accounts.services import invitation_accept, invitation_create, invitation_revoke
from accounts.tests.factories import PASSWORD, make_organization, make_user

pytestmark = pytest.mark.django_db


def _invite(org, owner, email="new@example.com", role=Role.MEMBER, **kw):
    return invitation_create(organization=org, email=email, role=role, invited_by=owner, **kw)


def _mailed_link(django_capture_on_commit_callbacks, org, owner, **kw):
    with django_capture_on_commit_callbacks(execute=True):
        issued = _invite(org, owner, **kw)
    return issued, re.search(r"https?://\S+", mail.outbox[-1].body).group(0)


def test_invitation_mails_a_link_and_stores_only_a_hash(django_capture_on_commit_callbacks, org_a, owner_a):
    issued, link = _mailed_link(django_capture_on_commit_callbacks, org_a, owner_a)
    assert mail.outbox[-1].to == ["new@example.com"]
    assert link.endswith(f"/invitations/{issued.token}/")
    assert issued.token not in issued.invitation.token_hash


def test_existing_user_accepts_and_joins_with_the_role(client, org_a, owner_a):
    user = make_user(email="new@example.com")
    issued = _invite(org_a, owner_a, role=Role.ADMIN)
    client.force_login(user)
    response = client.post(reverse("accounts:invitation", args=[issued.token]))
    assert response.status_code == 302
    assert Membership.objects.get(user=user, organization=org_a).role == Role.ADMIN
    assert client.session["parlor_active_organization_id"] == org_a.pk
    issued.invitation.refresh_from_db()
    assert issued.invitation.status == "accepted"


def test_new_user_signs_up_through_the_link_without_a_second_verification(client, org_a, owner_a):
    issued = _invite(org_a, owner_a)
    page = client.get(reverse("accounts:invitation", args=[issued.token]))
    assert page.status_code == 200 and org_a.name.encode() in page.content
    mail.outbox.clear()
    response = client.post(
        reverse("account_signup"),
        {"email": "new@example.com", "password1": PASSWORD, "password2": PASSWORD, "full_name": "New"},
    )
    assert response.status_code == 302
    user = User.objects.get(email="new@example.com")
    assert list(user.memberships.values_list("organization_id", "role")) == [(org_a.pk, Role.MEMBER)]
    assert not mail.outbox  # the invitation link already proved the address
    assert client.get("/admin/").status_code == 200


def test_signing_up_with_another_address_creates_an_own_organization(client, org_a, owner_a):
    issued = _invite(org_a, owner_a)
    client.get(reverse("accounts:invitation", args=[issued.token]))
    client.post(
        reverse("account_signup"),
        {"email": "other@example.com", "password1": PASSWORD, "password2": PASSWORD},
    )
    user = User.objects.get(email="other@example.com")
    assert not user.memberships.filter(organization=org_a).exists()
    assert user.memberships.get().role == Role.OWNER


def test_invitation_for_another_address_cannot_be_accepted(org_a, owner_a):
    issued = _invite(org_a, owner_a)
    with pytest.raises(InvitationInvalid):
        invitation_accept(invitation=issued.invitation, user=make_user(email="thief@example.com"))


def test_expired_invitation_cannot_be_accepted(client, org_a, owner_a):
    issued = _invite(org_a, owner_a)
    Invitation.objects.filter(pk=issued.invitation.pk).update(
        expires_at=timezone.now() - timedelta(minutes=1)
    )
    client.force_login(make_user(email="new@example.com"))
    assert client.get(reverse("accounts:invitation", args=[issued.token])).status_code == 404
    assert client.post(reverse("accounts:invitation", args=[issued.token])).status_code == 404
    assert not Membership.objects.filter(organization=org_a, user__email="new@example.com").exists()


def test_revoked_invitation_cannot_be_accepted(org_a, owner_a):
    issued = _invite(org_a, owner_a)
    invitation_revoke(invitation=issued.invitation)
    with pytest.raises(InvitationInvalid):
        invitation_accept(invitation=issued.invitation, user=make_user(email="new@example.com"))


def test_reinviting_replaces_the_pending_invitation(org_a, owner_a):
    first = _invite(org_a, owner_a)
    _invite(org_a, owner_a)
    first.invitation.refresh_from_db()
    assert first.invitation.status == "revoked"


def test_members_cannot_invite(org_a, member_a):
    with pytest.raises(PermissionDenied):
        _invite(org_a, member_a)


def test_admins_cannot_invite_owners(org_a, admin_a):
    with pytest.raises(PermissionDenied):
        _invite(org_a, admin_a, role=Role.OWNER)


def test_owner_invites_from_the_admin(client, org_a, owner_a, django_capture_on_commit_callbacks):
    client.force_login(owner_a)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            "/admin/accounts/invitation/add/", {"email": "Friend@Example.com", "role": "member"}
        )
    assert response.status_code == 302
    invitation = Invitation.objects.get(organization=org_a)
    assert invitation.email == "friend@example.com" and invitation.invited_by == owner_a
    assert mail.outbox[-1].to == ["friend@example.com"]
    assert "http://testserver/invitations/" in mail.outbox[-1].body


def test_admin_role_choices_exclude_owner_for_admins(client, admin_a):
    client.force_login(admin_a)
    response = client.post("/admin/accounts/invitation/add/", {"email": "x@example.com", "role": "owner"})
    assert response.status_code == 200
    assert not Invitation.objects.exists()


def test_member_cannot_invite_in_the_admin(client, member_a):
    client.force_login(member_a)
    assert (
        client.post(
            "/admin/accounts/invitation/add/", {"email": "x@example.com", "role": "member"}
        ).status_code
        == 403
    )


def test_user_switches_between_organizations(client, org_a, owner_a):
    second = make_organization(name="Second", owner=owner_a)
    client.force_login(owner_a)
    response = client.post(reverse("accounts:organization_switch"), {"organization": second.pk})
    assert response.status_code == 302
    assert b"Second" in client.get("/admin/").content
    assert client.get("/api/v1/organization/").json()["id"] == second.pk


def test_switching_to_a_foreign_organization_is_refused(client, owner_a, org_b):
    client.force_login(owner_a)
    assert client.post(reverse("accounts:organization_switch"), {"organization": org_b.pk}).status_code == 404
    assert client.session.get("parlor_active_organization_id") != org_b.pk


def test_last_owner_cannot_be_demoted(client, org_a, owner_a):
    client.force_login(owner_a)
    membership = Membership.objects.get(user=owner_a, organization=org_a)
    client.post(f"/admin/accounts/membership/{membership.pk}/change/", {"role": "member"})
    membership.refresh_from_db()
    assert membership.role == Role.OWNER


def test_owner_changes_a_member_role(client, org_a, owner_a, member_a):
    client.force_login(owner_a)
    membership = Membership.objects.get(user=member_a)
    response = client.post(f"/admin/accounts/membership/{membership.pk}/change/", {"role": "admin"})
    assert response.status_code == 302
    membership.refresh_from_db()
    assert membership.role == Role.ADMIN


def test_admin_cannot_change_roles(client, org_a, admin_a, member_a):
    client.force_login(admin_a)
    membership = Membership.objects.get(user=member_a)
    assert (
        client.post(f"/admin/accounts/membership/{membership.pk}/change/", {"role": "owner"}).status_code
        == 403
    )
    membership.refresh_from_db()
    assert membership.role == Role.MEMBER


def test_existing_user_signs_in_from_the_link_and_returns_to_accept(client, org_a, owner_a):
    user = make_user(email="new@example.com")
    issued = _invite(org_a, owner_a)
    invitation_url = reverse("accounts:invitation", args=[issued.token])
    client.get(invitation_url)
    response = client.post(reverse("account_login"), {"login": user.email, "password": PASSWORD})
    assert response["Location"] == invitation_url
    assert client.post(invitation_url).status_code == 302
    assert Membership.objects.filter(user=user, organization=org_a, role=Role.MEMBER).exists()


def test_owner_deletes_the_organization_after_typing_its_name(
    client, org_a, owner_a, django_capture_on_commit_callbacks
):
    client.force_login(owner_a)
    url = f"/admin/accounts/organization/{org_a.pk}/delete/"
    assert client.post(url, {"confirm_name": "not the name"}).status_code == 200
    assert type(org_a).objects.get(pk=org_a.pk).deletion_requested_at is None
    with django_capture_on_commit_callbacks() as callbacks:
        response = client.post(url, {"confirm_name": org_a.name})
    assert response.status_code == 302 and len(callbacks) == 1  # the background job is queued
    assert type(org_a).objects.get(pk=org_a.pk).deletion_requested_at is not None
    assert not Membership.objects.filter(organization=org_a).exists()  # nobody works in it meanwhile
    organization_delete(organization_id=org_a.pk)  # what the job runs
    assert not type(org_a).objects.filter(pk=org_a.pk).exists()


def test_admin_cannot_delete_the_organization(client, org_a, admin_a):
    client.force_login(admin_a)
    assert client.post(f"/admin/accounts/organization/{org_a.pk}/delete/", {"post": "yes"}).status_code == 403
    assert type(org_a).objects.filter(pk=org_a.pk).exists()


def test_owner_removes_a_member(client, org_a, owner_a, member_a):
    client.force_login(owner_a)
    membership = Membership.objects.get(user=member_a)
    response = client.post(f"/admin/accounts/membership/{membership.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert not Membership.objects.filter(pk=membership.pk).exists()
    assert User.objects.filter(pk=member_a.pk).exists()  # the person keeps their account


def test_last_owner_cannot_be_removed(client, org_a, owner_a):
    client.force_login(owner_a)
    membership = Membership.objects.get(user=owner_a, organization=org_a)
    client.post(f"/admin/accounts/membership/{membership.pk}/delete/", {"post": "yes"})
    assert Membership.objects.filter(pk=membership.pk).exists()


def test_removed_member_loses_admin_access(client, org_a, member_a):
    client.force_login(member_a)
    assert client.get("/admin/").status_code == 200
    Membership.objects.filter(user=member_a).delete()
    assert client.get("/admin/").status_code == 302


def test_resend_replaces_an_expired_invitation_with_a_fresh_link(
    client, org_a, owner_a, django_capture_on_commit_callbacks
):
    issued = _invite(org_a, owner_a)
    Invitation.objects.filter(pk=issued.invitation.pk).update(expires_at=timezone.now() - timedelta(days=1))
    client.force_login(owner_a)
    with django_capture_on_commit_callbacks(execute=True):
        client.post(
            "/admin/accounts/invitation/", {"action": "resend", "_selected_action": [issued.invitation.pk]}
        )
    fresh = (
        Invitation.objects.filter(organization=org_a, email="new@example.com").order_by("-created_at").first()
    )
    assert fresh.pk != issued.invitation.pk and fresh.is_pending
    assert mail.outbox[-1].to == ["new@example.com"]


def _claim_unverified(client, user, email: str) -> None:
    """``user`` types ``email`` as their new address and never confirms it (anyone can)."""
    client.force_login(user)
    client.post(reverse("account_email"), {"action_add": "", "email": email})
    client.logout()
    assert EmailAddress.objects.filter(user=user, email=email, verified=False).exists()


def test_an_unverified_claim_by_another_user_does_not_block_the_invitees_signup(client, org_a, owner_a):
    _claim_unverified(client, make_user(email="squatter@example.com"), "new@example.com")
    issued = _invite(org_a, owner_a)
    client.get(reverse("accounts:invitation", args=[issued.token]))
    mail.outbox.clear()
    response = client.post(
        reverse("account_signup"),
        {"email": "new@example.com", "password1": PASSWORD, "password2": PASSWORD, "full_name": "New"},
    )
    assert response.status_code == 302
    invitee = User.objects.get(email="new@example.com")
    assert Membership.objects.get(user=invitee).organization == org_a
    assert EmailAddress.objects.get(user=invitee).verified  # the link proved the mailbox
    assert not any("already" in m.subject.lower() for m in mail.outbox)
    assert client.get("/admin/").status_code == 200
    assert not EmailAddress.objects.filter(
        user__email="squatter@example.com", email="new@example.com"
    ).exists()


def test_an_unverified_claim_does_not_block_a_plain_signup(client):
    # (Created directly: a claim made through the page would also hold allauth's per-address mail cooldown.)
    EmailAddress.objects.create(user=make_user(email="squatter@example.com"), email="ada@example.com")
    response = client.post(
        reverse("account_signup"), {"email": "ada@example.com", "password1": PASSWORD, "password2": PASSWORD}
    )
    assert response.status_code == 302
    ada = User.objects.get(email="ada@example.com")
    confirm_url = re.search(r"https?://\S+", mail.outbox[-1].body).group(0)
    client.post(confirm_url)
    assert EmailAddress.objects.get(user=ada).verified
    assert client.get("/admin/").status_code == 200
    # The claim gave way to the address's owner.
    assert not EmailAddress.objects.filter(
        user__email="squatter@example.com", email="ada@example.com"
    ).exists()


def test_a_verified_address_of_another_user_still_cannot_sign_up_again(client):
    make_user(email="taken@example.com")
    mail.outbox.clear()
    client.post(
        reverse("account_signup"),
        {"email": "taken@example.com", "password1": PASSWORD, "password2": PASSWORD},
    )
    assert User.objects.filter(email="taken@example.com").count() == 1
    assert "already" in mail.outbox[-1].subject.lower()  # allauth's enumeration-safe notice


def test_social_sign_in_by_email_ignores_an_unverified_claim(rf, monkeypatch):
    from types import SimpleNamespace

    from accounts.adapters import SocialAccountAdapter

    squatter = make_user(email="squatter@example.com")
    EmailAddress.objects.create(user=squatter, email="ada@example.com", verified=False)
    adapter = SocialAccountAdapter(rf.get("/"))
    monkeypatch.setattr(adapter, "can_authenticate_by_email", lambda login, email: True)
    login = SimpleNamespace(email_addresses=[EmailAddress(email="ada@example.com", verified=True)])
    assert adapter.authenticate_by_email(login) is None  # not signed in to the squatter's account
    ada = make_user(email="ada-login@example.com")
    EmailAddress.objects.create(user=ada, email="ada@example.com", verified=True)
    assert adapter.authenticate_by_email(login) == (ada, "ada@example.com")


def test_a_provider_verified_sign_up_releases_unconfirmed_claims(rf):
    from types import SimpleNamespace

    from accounts.adapters import SocialAccountAdapter

    squatter = make_user(email="squatter@example.com")
    EmailAddress.objects.create(user=squatter, email="ada@example.com", verified=False)
    login = SimpleNamespace(
        is_existing=False, email_addresses=[EmailAddress(email="ada@example.com", verified=True)]
    )
    SocialAccountAdapter(rf.get("/")).pre_social_login(rf.get("/"), login)
    assert not EmailAddress.objects.filter(email="ada@example.com").exists()
    # An address someone verified stays theirs.
    EmailAddress.objects.create(user=squatter, email="ada@example.com", verified=True)
    SocialAccountAdapter(rf.get("/")).pre_social_login(rf.get("/"), login)
    assert EmailAddress.objects.filter(user=squatter, email="ada@example.com").exists()
