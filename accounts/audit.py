"""The audit log (services and selectors): who did what and when, per organization.

Every writer calls ``audit_record``; the log is append-only for the application (``AuditEvent.save`` and
``delete`` refuse changes) and shrinks only through ``audit_events_expire`` (the retention job). Entries
name objects by kind and id, never by their content, so an erasure leaves nothing of a visitor here.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.db.models import QuerySet
from django.utils import timezone

from accounts.models import AuditAction, AuditEvent, Membership, Organization, Role, User
from config.client_ip import client_ip

SYSTEM = "system"
EXPIRE_BATCH = 5000
AUDIT_READ_ROLES = frozenset({Role.OWNER, Role.ADMIN})


def actor_label(*, user: Any = None, api_key: Any = None) -> str:
    if api_key is not None:
        return f"API key {api_key.prefix}"
    if user is not None and getattr(user, "is_authenticated", False):
        return user.email
    return SYSTEM


def audit_record(
    *,
    organization: Organization | int,
    action: str,
    target: str = "",
    actor: User | None = None,
    api_key: Any = None,
    detail: dict[str, Any] | None = None,
    request: Any = None,
) -> AuditEvent:
    """Append one event. ``request`` (Django or DRF) supplies the actor and address when given."""
    if request is not None:
        api_key = api_key if api_key is not None else _request_api_key(request)
        if actor is None and api_key is None:
            user = getattr(request, "user", None)
            actor = user if user is not None and user.is_authenticated else None
    organization_id = organization if isinstance(organization, int) else organization.pk
    return AuditEvent.objects.create(
        organization_id=organization_id,
        actor=actor if actor is not None and actor.pk else None,
        actor_label=actor_label(user=actor, api_key=api_key)[:200],
        action=action,
        target=target[:200],
        detail=detail or {},
        ip_address=_address(request),
    )


def _request_api_key(request: Any) -> Any:
    auth = getattr(request, "auth", None)
    return auth if getattr(auth, "is_api_key", False) else None


def _address(request: Any) -> str | None:
    if request is None:
        return None
    meta = getattr(getattr(request, "_request", request), "META", None) or {}
    peer = meta.get("REMOTE_ADDR")
    return client_ip(peer, meta.get("HTTP_X_FORWARDED_FOR")) or None if peer else None


def audit_sign_in(*, user: User, request: Any, failed: bool = False) -> None:
    """Sign-ins and failed sign-ins, recorded in every organization of the account."""
    action = AuditAction.SIGN_IN_FAILED if failed else AuditAction.SIGN_IN
    for organization_id in Membership.objects.filter(user=user).values_list("organization_id", flat=True):
        audit_record(organization=organization_id, action=action, actor=user, target=f"user {user.pk}",
                     request=request)  # fmt: skip


def audit_events_for_organization(*, organization: Organization) -> QuerySet[AuditEvent]:
    return AuditEvent.objects.filter(organization=organization).select_related("actor")


def audit_events_expire(*, organization: Organization, now: Any = None) -> int:
    """Delete the organization's events older than its audit retention, in bounded batches."""
    if organization.audit_retention_days is None:
        return 0
    cutoff = (now or timezone.now()) - timedelta(days=organization.audit_retention_days)
    deleted = 0
    while True:
        ids = list(
            AuditEvent.objects.filter(organization=organization, created_at__lt=cutoff).values_list(
                "pk", flat=True
            )[:EXPIRE_BATCH]
        )
        if not ids:
            return deleted
        # A queryset delete: the one way events leave (``AuditEvent.delete`` refuses single rows).
        deleted += AuditEvent.objects.filter(pk__in=ids).delete()[0]


def audit_api_change(*, request: Any, organization: Organization, action: str, target: str) -> None:
    """A change made through the REST API (by an API key or a signed-in member)."""
    audit_record(organization=organization, action=action, target=target, request=request,
                 detail={"via": "api"})  # fmt: skip
