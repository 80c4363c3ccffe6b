"""Account errors: subclasses of the one ``ApplicationError`` (config/errors.py)."""

from __future__ import annotations

from config.errors import ApplicationError, PermissionDenied

__all__ = ["ApiOriginNotAllowed", "ApplicationError", "InvitationInvalid", "PermissionDenied"]


class InvitationInvalid(ApplicationError):
    code = "invitation_invalid"


class ApiOriginNotAllowed(PermissionDenied):
    """A browser page of a website the key's organization does not list called the API (CORS)."""

    code = "origin_not_allowed"
    default_message = (
        "This website may not call the API with this key: add its origin to the organization's API allowed "
        "origins."
    )
