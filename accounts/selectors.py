"""Reads for accounts: the request's active organization, memberships and roles.

The active organization of a signed-in user lives in the session (``ACTIVE_ORGANIZATION_SESSION_KEY``).
It is always re-checked against the user's memberships, so a stale or forged id never grants access:
without a valid membership the user's first organization is used, and without any, ``None``.
API-key requests (``request.auth`` is an ``ApiKey``) are bound to the key's organization instead.
"""

from __future__ import annotations

import hashlib
import hmac
import zoneinfo
from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.db.models import QuerySet
from django.utils import timezone

from accounts.models import WEEKDAYS, ApiKey, Membership, Organization, Role, User

if TYPE_CHECKING:
    from django.http import HttpRequest

ACTIVE_ORGANIZATION_SESSION_KEY = "parlor_active_organization_id"
PENDING_INVITATION_SESSION_KEY = "parlor_pending_invitation"
_CACHE_ATTR = "_parlor_active_membership"
WRITE_ROLES = frozenset({Role.OWNER, Role.ADMIN})


def _http_request(request: Any) -> HttpRequest:
    """DRF wraps the Django request; cache on and read the session of the underlying one."""
    return getattr(request, "_request", request)


def active_membership(request: Any) -> Membership | None:
    """The signed-in user's membership in the active organization (cached per request)."""
    base = _http_request(request)
    if hasattr(base, _CACHE_ATTR):
        return getattr(base, _CACHE_ATTR)
    membership = _resolve_membership(base)
    setattr(base, _CACHE_ATTR, membership)
    return membership


def _resolve_membership(request: HttpRequest) -> Membership | None:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return None
    memberships = Membership.objects.filter(user=user).select_related("organization")
    session = getattr(request, "session", None)
    wanted = session.get(ACTIVE_ORGANIZATION_SESSION_KEY) if session is not None else None
    if wanted is not None:
        membership = memberships.filter(organization_id=wanted).first()
        if membership is not None:
            return membership
    membership = memberships.order_by("created_at", "pk").first()
    if session is not None:
        if membership is None:
            session.pop(ACTIVE_ORGANIZATION_SESSION_KEY, None)
        else:
            session[ACTIVE_ORGANIZATION_SESSION_KEY] = membership.organization_id
    return membership


def active_organization(request: Any) -> Organization | None:
    """The organization this request acts for, or ``None`` (anonymous, or a user with no organization).

    An API key fixes the organization to the key's own; otherwise the session choice of the signed-in
    user, validated against their memberships.
    """
    auth = getattr(request, "auth", None)
    if auth is not None and getattr(auth, "is_api_key", False):
        return auth.organization
    membership = active_membership(request)
    return membership.organization if membership is not None else None


def active_role(request: Any) -> str | None:
    """The user's role in the active organization (``Role`` value) or ``None``."""
    membership = active_membership(request)
    return membership.role if membership is not None else None


def forget_active_membership(request: Any) -> None:
    """Drop the per-request cache, e.g. right after switching the organization."""
    base = _http_request(request)
    if hasattr(base, _CACHE_ATTR):
        delattr(base, _CACHE_ATTR)


def set_active_organization(request: Any, organization: Organization) -> None:
    """Remember ``organization`` as the active one (callers check the membership first)."""
    _http_request(request).session[ACTIVE_ORGANIZATION_SESSION_KEY] = organization.pk
    forget_active_membership(request)


def organizations_for_user(*, user: User) -> QuerySet[Organization]:
    return Organization.objects.filter(memberships__user=user).order_by("name", "pk")


def membership_for(*, user: User, organization: Organization) -> Membership | None:
    return Membership.objects.filter(user=user, organization=organization).first()


def membership_for_organization_id(*, user: User, organization_id: int) -> Membership | None:
    return (
        Membership.objects.select_related("organization")
        .filter(user=user, organization_id=organization_id)
        .first()
    )


def user_is_member(*, user: User) -> bool:
    return user.is_authenticated and Membership.objects.filter(user=user).exists()


def api_key_get_by_secret(*, secret: str) -> ApiKey | None:
    """The key whose full secret is ``secret`` (any status), or ``None``. Compared in constant time."""
    parts = secret.split("_")  # "prl", prefix, secret
    if len(parts) != 3 or parts[0] != "prl" or not parts[1] or not parts[2]:
        return None
    api_key = ApiKey.objects.select_related("organization").filter(prefix=f"prl_{parts[1]}").first()
    if api_key is None:
        return None
    digest = hashlib.sha256(secret.encode()).hexdigest()
    return api_key if hmac.compare_digest(digest, api_key.key_hash) else None


def api_keys_for_organization(*, organization: Organization) -> QuerySet[ApiKey]:
    return ApiKey.objects.filter(organization=organization).order_by("-created_at")


def api_origin_listed(*, origin: str) -> bool:
    """Whether any organization lets pages of ``origin`` call the API: CORS preflights carry no key, so
    they are answered for every listed origin; the key's own organization is checked on the request."""
    origin = origin.lower()
    return bool(origin) and Organization.objects.filter(api_allowed_origins__contains=[origin]).exists()


def api_origin_allowed(*, organization: Organization, origin: str, own_origin: str) -> bool:
    """Whether a request sent from ``origin`` (its ``Origin`` header) may use a key of ``organization``:
    same-origin pages (Parlor's own API docs) always, other sites when the organization lists them."""
    origin = origin.lower()
    return origin == own_origin.lower() or origin in organization.api_allowed_origins


def organization_is_open(*, organization: Organization, at: datetime | None = None) -> bool:
    """Whether ``at`` (now by default) falls in the organization's opening hours for human handoff.

    No hours set means always open. Hours are wall-clock times in the organization's time zone (UTC when
    none is set), so a summer-time change moves them with the clock, as people expect."""
    hours = organization.opening_hours or {}
    if not hours:
        return True
    zone = zoneinfo.ZoneInfo(organization.opening_hours_timezone or "UTC")
    local = (at or timezone.now()).astimezone(zone)
    clock = local.strftime("%H:%M")
    ranges = hours.get(WEEKDAYS[local.weekday()], [])
    return any(start <= clock < end for start, end in ranges)


def organization_members_to_email_on_handoff(*, organization_id: int) -> QuerySet[User]:
    """Active members who want an e-mail when a visitor asks for a person."""
    return User.objects.filter(
        is_active=True,
        memberships__organization_id=organization_id,
        memberships__notify_handoff_email=True,
    ).distinct()
