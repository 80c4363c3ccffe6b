"""A user deletes their own account after re-authenticating; an organization they alone own is handed over
to another member or deleted, as they chose — never left without an owner."""

from __future__ import annotations

import pytest
from django.urls import reverse

from accounts.deletion import HANDOVER_DELETE, user_delete
from accounts.exceptions import ApplicationError
from accounts.models import AuditAction, AuditEvent, Membership, Organization, Role, User
from accounts.tests.factories import PASSWORD, add_member, make_organization, make_user

pytestmark = pytest.mark.django_db
URL = "/account/delete/"


def _signed_in_again(client, user):
    """Sign in, be sent to allauth's re-authentication by the deletion, and give the password again."""
    client.force_login(user)
    response = client.post(URL, {})
    assert response.status_code == 302 and reverse("account_reauthenticate") in response["Location"]
    again = client.post(response["Location"], {"password": PASSWORD})
    # allauth replays the interrupted POST, which lacked the confirmation box.
    assert again.status_code == 200 and b"Tick the box" in again.content
    return client


def test_deleting_the_account_asks_to_sign_in_again(client):
    user = make_user()
    client.force_login(user)  # a session without a recent sign-in
    response = client.post(URL, {"confirm": "delete"})
    assert response.status_code == 302 and reverse("account_reauthenticate") in response["Location"]
    wrong = client.post(response["Location"], {"password": "not my password"})
    assert wrong.status_code == 200
    assert client.post(URL, {"confirm": "delete"}).status_code == 302
    assert User.objects.filter(pk=user.pk).exists()


def test_sole_owner_hands_the_organization_over_then_the_account_is_gone(client):
    owner = make_user()
    organization = make_organization(name="Handed", owner=owner)
    colleague = add_member(organization=organization, role=Role.MEMBER)
    _signed_in_again(client, owner)
    page = client.get(URL)
    assert (
        page.status_code == 200
        and b"only owner of" in page.content
        and colleague.email.encode() in page.content
    )

    refused = client.post(URL, {"confirm": "delete"})  # no decision for the organization
    assert refused.status_code == 200 and b"Choose who takes over" in refused.content
    assert User.objects.filter(pk=owner.pk).exists()

    handover = Membership.objects.get(user=colleague, organization=organization)
    response = client.post(URL, {"confirm": "delete", f"org-{organization.pk}": str(handover.pk)})
    assert response.status_code == 302
    assert not User.objects.filter(pk=owner.pk).exists()
    assert Membership.objects.get(pk=handover.pk).role == Role.OWNER
    assert AuditEvent.objects.filter(
        organization=organization, action=AuditAction.OWNERSHIP_HANDED_OVER
    ).exists()


def test_sole_owner_may_delete_the_organization_with_the_account():
    owner = make_user()
    organization = make_organization(name="Gone too", owner=owner)
    user_delete(user=owner, decisions={organization.pk: HANDOVER_DELETE})
    assert not User.objects.filter(pk=owner.pk).exists()
    # Queued for the deletion job, nobody left inside meanwhile: never an organization without owner.
    assert Organization.objects.get(pk=organization.pk).deletion_requested_at is not None
    assert not Membership.objects.filter(organization=organization).exists()


def test_without_a_decision_nothing_is_deleted():
    owner = make_user()
    organization = make_organization(name="Kept", owner=owner)
    add_member(organization=organization)
    with pytest.raises(ApplicationError):
        user_delete(user=owner, decisions={})
    assert Membership.objects.filter(organization=organization, user=owner, role=Role.OWNER).exists()


def test_a_co_owned_organization_keeps_its_other_owner():
    owner = make_user()
    organization = make_organization(name="Shared", owner=owner)
    other_owner = add_member(organization=organization, role=Role.OWNER)
    user_delete(user=owner, decisions={})
    assert Membership.objects.filter(organization=organization, user=other_owner, role=Role.OWNER).exists()
    assert Organization.objects.get(pk=organization.pk).deletion_requested_at is None
