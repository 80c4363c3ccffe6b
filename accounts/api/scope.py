"""Who is calling a DRF view, and for which organization: shared by every organization-scoped API.

Session users act in their active organization (owners and admins write); API keys act in theirs.
"""

from __future__ import annotations

from typing import Any

from rest_framework.exceptions import NotFound, PermissionDenied
from rest_framework.request import Request

from accounts.models import Organization
from accounts.selectors import WRITE_ROLES, active_organization, active_role


def request_api_key(request: Request) -> Any:
    """The request's API key, or None for a session user."""
    return request.auth if getattr(request.auth, "is_api_key", False) else None


def request_organization(request: Request) -> Organization:
    organization = active_organization(request)
    if organization is None:
        raise NotFound("You do not belong to an organization.")
    return organization


def require_writer(request: Request, *, what: str) -> None:
    """Refuse members (owners and admins write). API keys may write unless read-only (refused by the
    ApiKeyScope permission already); chatbots refuses keys limited to certain bots where they would change
    what other bots share (``chatbots.api.access.require_unlimited_writer``)."""
    if request_api_key(request) is not None:
        return
    if active_role(request) not in WRITE_ROLES:
        raise PermissionDenied(f"Only owners and admins can change {what}.")
