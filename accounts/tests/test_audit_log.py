"""The audit log: sign-ins, failed sign-ins, API keys, roles, invitations and admin/API changes are recorded
per organization; owners and admins read it, members do not; nobody changes or deletes an entry."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from accounts.audit import audit_events_expire, audit_record
from accounts.models import AuditAction, AuditEvent, Membership, Role
from accounts.services import api_key_create, api_key_revoke, invitation_create, membership_change_role
from accounts.tests.factories import PASSWORD, add_member, make_organization, make_user, owner_of

pytestmark = pytest.mark.django_db
AUDIT = "/admin/accounts/auditevent/"


def _actions(organization) -> list[str]:
    return list(AuditEvent.objects.filter(organization=organization).values_list("action", flat=True))


def test_sign_ins_and_failed_sign_ins_are_recorded_in_each_organization(client):
    user = make_user()
    first = make_organization(name="First", owner=user)
    second = make_organization(name="Second", owner=user)
    client.post(reverse("account_login"), {"login": user.email, "password": "wrong password"})
    client.post(reverse("account_login"), {"login": user.email, "password": PASSWORD})
    for organization in (first, second):
        assert AuditAction.SIGN_IN_FAILED in _actions(organization)
        assert AuditAction.SIGN_IN in _actions(organization)
    failed = AuditEvent.objects.filter(organization=first, action=AuditAction.SIGN_IN_FAILED).first()
    assert failed.actor == user and failed.ip_address == "127.0.0.1"


def test_keys_roles_and_invitations_are_recorded_with_their_actor():
    organization = make_organization(name="Logged")
    owner = owner_of(organization)
    member = add_member(organization=organization)
    issued = api_key_create(organization=organization, name="CI", created_by=owner)
    api_key_revoke(api_key=issued.api_key, actor=owner)
    membership_change_role(membership=Membership.objects.get(user=member), role=Role.ADMIN, actor=owner)
    invitation_create(organization=organization, email="new@example.com", invited_by=owner)
    recorded = AuditEvent.objects.filter(organization=organization, actor=owner)
    assert {AuditAction.API_KEY_CREATED, AuditAction.API_KEY_REVOKED, AuditAction.ROLE_CHANGED,
            AuditAction.INVITATION_SENT} <= set(recorded.values_list("action", flat=True))  # fmt: skip
    role = recorded.get(action=AuditAction.ROLE_CHANGED)
    assert role.detail == {"from": "member", "to": "admin"} and role.actor_label == owner.email
    assert issued.key not in str(list(recorded.values()))  # never a secret


def test_bot_changes_in_the_admin_and_the_api_are_recorded(client):
    from chatbots.tests.factories import admin_form_data, make_api_key, make_bot

    organization = make_organization(name="Bots")
    client.force_login(owner_of(organization))
    response = client.post("/admin/chatbots/bot/add/", admin_form_data(name="Concierge"))
    assert response.status_code == 302
    created = AuditEvent.objects.get(organization=organization, action=AuditAction.OBJECT_CREATED)
    assert created.target.startswith("bot ") and created.detail["via"] == "admin"

    bot = make_bot(organization=organization, name="Api bot")
    key = make_api_key(bot).key
    api = client.__class__(HTTP_AUTHORIZATION=f"Bearer {key}")
    assert (
        api.patch(
            f"/api/v1/bots/{bot.public_id}/", {"name": "Renamed"}, content_type="application/json"
        ).status_code
        == 200
    )
    changed = AuditEvent.objects.get(organization=organization, action=AuditAction.OBJECT_CHANGED)
    assert changed.target == f"bot {bot.pk}" and changed.actor_label.startswith("API key prl_")


def test_owners_and_admins_read_the_log_members_do_not(client):
    organization = make_organization(name="Readers")
    audit_record(organization=organization, action=AuditAction.RETENTION_RUN, target="conversations")
    admin = add_member(organization=organization, role=Role.ADMIN)
    member = add_member(organization=organization, role=Role.MEMBER)
    for reader in (owner_of(organization), admin):
        client.force_login(reader)
        page = client.get(AUDIT)
        assert page.status_code == 200 and b"Retention run" in page.content
    client.force_login(member)
    assert client.get(AUDIT).status_code == 403


def test_entries_cannot_be_changed_or_deleted_but_expire_with_retention(client):
    organization = make_organization(name="Append only")
    event = audit_record(organization=organization, action=AuditAction.SIGN_IN)
    event.target = "rewritten"
    with pytest.raises(ValueError):
        event.save()
    with pytest.raises(ValueError):
        event.delete()
    client.force_login(owner_of(organization))
    assert client.post(f"{AUDIT}{event.pk}/delete/", {"post": "yes"}).status_code == 403
    assert client.post(f"{AUDIT}{event.pk}/change/", {"target": "x"}).status_code == 403

    old = audit_record(organization=organization, action=AuditAction.SIGN_IN)
    AuditEvent.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=400))
    assert audit_events_expire(organization=organization) == 1  # default: kept 365 days
    assert AuditEvent.objects.filter(pk=event.pk).exists()
