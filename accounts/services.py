"""Writes for accounts: organizations, memberships, invitations, API keys."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.crypto import get_random_string
from django.utils.text import slugify

from accounts.audit import audit_record
from accounts.emails import configured_site, email_message, email_subject
from accounts.exceptions import ApplicationError, InvitationInvalid, PermissionDenied
from accounts.models import ApiKey, AuditAction, Invitation, Membership, Organization, Role, User

API_KEY_PREFIX = "prl_"
LAST_USED_RESOLUTION = timedelta(minutes=1)  # at most one write per key and minute
_SLUG_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"


def sha256_hex(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


# --- organizations and memberships ---------------------------------------------------------------
def _unique_slug(name: str) -> str:
    base = slugify(name)[:60] or "org"
    slug = base
    while Organization.objects.filter(slug=slug).exists():
        slug = f"{base}-{get_random_string(6, _SLUG_ALPHABET)}"
    return slug


@transaction.atomic
def organization_create(*, name: str, owner: User) -> Organization:
    """Create an organization with ``owner`` as its first owner."""
    name = name.strip()
    if not name:
        raise ApplicationError("An organization needs a name.")
    organization = Organization.objects.create(name=name, slug=_unique_slug(name))
    Membership.objects.create(user=owner, organization=organization, role=Role.OWNER)
    return organization


def default_organization_name(user: User) -> str:
    local = user.email.split("@")[0]
    return f"{user.full_name or local}'s organization"


@transaction.atomic
def signup_complete(
    *, user: User, organization_name: str = "", full_name: str = "", invitation_token: str | None = None
) -> Organization:
    """After sign-up: join the organization of a pending invitation, or create the user's own."""
    if full_name and not user.full_name:
        user.full_name = full_name.strip()
        user.save(update_fields=["full_name"])
    if invitation_token:
        invitation = invitation_get_pending(token=invitation_token)
        if invitation is not None and invitation.email.lower() == user.email.lower():
            return invitation_accept(invitation=invitation, user=user).organization
    return organization_create(name=organization_name.strip() or default_organization_name(user), owner=user)


def _lock_owners(organization_id: int) -> int:
    """Lock the organization's row and return its number of owners.

    Every change that could take away an owner takes this lock first, so two of them run one after the
    other and the second counts what the first left. (``select_for_update().count()`` would lock nothing:
    Django drops FOR UPDATE from an aggregate, and two concurrent demotions could both count two owners.)
    """
    Organization.objects.select_for_update().only("pk").get(pk=organization_id)
    return Membership.objects.filter(organization_id=organization_id, role=Role.OWNER).count()


@transaction.atomic
def membership_change_role(*, membership: Membership, role: str, actor: User | None = None) -> Membership:
    """Change a member's role; an organization always keeps at least one owner."""
    if role not in Role.values:
        raise ApplicationError(f"Unknown role {role!r}.")
    owners = _lock_owners(membership.organization_id)
    membership = Membership.objects.get(pk=membership.pk)  # as it is now, under the lock
    if membership.role == Role.OWNER and role != Role.OWNER and owners <= 1:
        raise ApplicationError("An organization needs at least one owner.")
    previous = membership.role
    membership.role = role
    membership.save(update_fields=["role"])
    if previous != role:
        audit_record(organization=membership.organization_id, action=AuditAction.ROLE_CHANGED, actor=actor,
                     target=f"user {membership.user_id}", detail={"from": previous, "to": role})  # fmt: skip
    return membership


@transaction.atomic
def membership_remove(*, membership: Membership, actor: User | None = None) -> None:
    """Remove a member; the last owner cannot be removed."""
    owners = _lock_owners(membership.organization_id)
    membership = Membership.objects.filter(pk=membership.pk).first()  # as it is now, under the lock
    if membership is None:
        return
    if membership.role == Role.OWNER and owners <= 1:
        raise ApplicationError(
            "The last owner cannot leave the organization: hand it over to another member or delete it."
        )
    membership.delete()
    audit_record(organization=membership.organization_id, action=AuditAction.MEMBER_REMOVED, actor=actor,
                 target=f"user {membership.user_id}")  # fmt: skip


# --- invitations -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class IssuedInvitation:
    invitation: Invitation
    token: str  # only here, never stored
    url: str


def invitation_url(*, token: str, site_url: str | None = None) -> str:
    base = (site_url or settings.SITE_URL).rstrip("/")
    return base + reverse("accounts:invitation", kwargs={"token": token})


def _send_invitation_mail(*, invitation: Invitation, url: str) -> None:
    context = {
        "invitation": invitation,
        "url": url,
        "organization": invitation.organization,
        "site": configured_site(),
    }
    subject = email_subject(f"You are invited to join {invitation.organization.name}")
    body = render_to_string("accounts/email/invitation.txt", context)
    email_message(subject=subject, text=body, to=[invitation.email]).send()


@transaction.atomic
def invitation_create(
    *,
    organization: Organization,
    email: str,
    role: str = Role.MEMBER,
    invited_by: User | None = None,
    site_url: str | None = None,
) -> IssuedInvitation:
    """Invite ``email`` to join with ``role`` and mail the link (after commit).

    Only owners may invite owners. A pending invitation for the same address is replaced.
    """
    email = User.objects.normalize_email(email).strip().lower()
    if role not in Role.values:
        raise ApplicationError(f"Unknown role {role!r}.")
    if invited_by is not None and not invited_by.is_superuser:
        inviter = Membership.objects.filter(user=invited_by, organization=organization).first()
        if inviter is None or inviter.role not in (Role.OWNER, Role.ADMIN):
            raise PermissionDenied("Only owners and admins can invite people.")
        if role == Role.OWNER and inviter.role != Role.OWNER:
            raise PermissionDenied("Only owners can invite owners.")
    if Membership.objects.filter(organization=organization, user__email__iexact=email).exists():
        raise ApplicationError(f"{email} is already a member of {organization.name}.")
    now = timezone.now()
    Invitation.objects.filter(
        organization=organization, email__iexact=email, accepted_at=None, revoked_at=None
    ).update(revoked_at=now)
    token = secrets.token_urlsafe(32)
    invitation = Invitation.objects.create(
        organization=organization, email=email, role=role, token_hash=sha256_hex(token), invited_by=invited_by
    )
    url = invitation_url(token=token, site_url=site_url)
    audit_record(organization=organization, action=AuditAction.INVITATION_SENT, actor=invited_by,
                 target=f"invitation {invitation.pk}", detail={"role": role})  # fmt: skip
    transaction.on_commit(lambda: _send_invitation_mail(invitation=invitation, url=url))
    return IssuedInvitation(invitation=invitation, token=token, url=url)


def invitation_get_pending(*, token: str) -> Invitation | None:
    invitation = (
        Invitation.objects.select_related("organization").filter(token_hash=sha256_hex(token)).first()
    )
    return invitation if invitation is not None and invitation.is_pending else None


def invitation_revoke(*, invitation: Invitation, actor: User | None = None) -> Invitation:
    if invitation.accepted_at is None and invitation.revoked_at is None:
        invitation.revoked_at = timezone.now()
        invitation.save(update_fields=["revoked_at"])
        audit_record(organization=invitation.organization_id, action=AuditAction.INVITATION_REVOKED, actor=actor,
                     target=f"invitation {invitation.pk}")  # fmt: skip
    return invitation


def _user_owns_email(user: User, email: str) -> bool:
    from allauth.account.models import EmailAddress

    if user.email.lower() == email.lower():
        return True
    return EmailAddress.objects.filter(user=user, email__iexact=email, verified=True).exists()


@transaction.atomic
def invitation_accept(*, invitation: Invitation, user: User) -> Membership:
    """Join the invitation's organization with its role (existing members keep their membership)."""
    invitation = Invitation.objects.select_for_update().select_related("organization").get(pk=invitation.pk)
    if not invitation.is_pending:
        raise InvitationInvalid(f"This invitation is {invitation.status}.")
    if not _user_owns_email(user, invitation.email):
        raise InvitationInvalid(f"This invitation was sent to {invitation.email}; sign in with that address.")
    membership, _ = Membership.objects.get_or_create(
        user=user, organization=invitation.organization, defaults={"role": invitation.role}
    )
    invitation.accepted_at = timezone.now()
    invitation.accepted_by = user
    invitation.save(update_fields=["accepted_at", "accepted_by"])
    audit_record(organization=invitation.organization_id, action=AuditAction.INVITATION_ACCEPTED, actor=user,
                 target=f"invitation {invitation.pk}", detail={"role": membership.role})  # fmt: skip
    return membership


# --- API keys ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class IssuedApiKey:
    api_key: ApiKey
    key: str  # the full secret, shown once


@transaction.atomic
def api_key_create(
    *,
    organization: Organization,
    name: str,
    created_by: User | None = None,
    read_only: bool = False,
    expires_at: datetime | None = None,
) -> IssuedApiKey:
    """Create a key; the returned ``key`` is the only time the secret exists outside the caller."""
    prefix = API_KEY_PREFIX + get_random_string(8, _SLUG_ALPHABET)
    key = f"{prefix}_{get_random_string(40)}"  # letters and digits only: ~238 bits, no "_" to confuse parsing
    api_key = ApiKey.objects.create(
        organization=organization,
        name=name.strip() or "API key",
        prefix=prefix,
        key_hash=sha256_hex(key),
        read_only=read_only,
        expires_at=expires_at,
        created_by=created_by,
    )
    audit_record(organization=organization, action=AuditAction.API_KEY_CREATED, actor=created_by,
                 target=f"API key {prefix}", detail={"read_only": read_only})  # fmt: skip
    return IssuedApiKey(api_key=api_key, key=key)


def api_key_revoke(*, api_key: ApiKey, actor: User | None = None) -> ApiKey:
    if api_key.revoked_at is None:
        api_key.revoked_at = timezone.now()
        api_key.save(update_fields=["revoked_at"])
        audit_record(organization=api_key.organization_id, action=AuditAction.API_KEY_REVOKED, actor=actor,
                     target=f"API key {api_key.prefix}")  # fmt: skip
    return api_key


def api_key_record_use(*, api_key: ApiKey) -> None:
    """Record the last use, writing at most once per ``LAST_USED_RESOLUTION`` (a conditional UPDATE)."""
    now = timezone.now()
    updated = (
        ApiKey.objects.filter(pk=api_key.pk)
        .filter(Q(last_used_at__isnull=True) | Q(last_used_at__lt=now - LAST_USED_RESOLUTION))
        .update(last_used_at=now)
    )
    if updated:
        api_key.last_used_at = now


def membership_set_handoff_notifications(*, membership: Membership, email: bool, browser: bool) -> Membership:
    """A member's own choice of how to hear of visitors who ask for a person (e-mail, browser)."""
    membership.notify_handoff_email = email
    membership.notify_handoff_browser = browser
    membership.save(update_fields=["notify_handoff_email", "notify_handoff_browser"])
    return membership
