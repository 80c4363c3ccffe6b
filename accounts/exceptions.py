"""Account errors: subclasses of the one ``ApplicationError`` (config/errors.py)."""

from __future__ import annotations

from config.errors import ApplicationError, PermissionDenied

__all__ = ["ApplicationError", "InvitationInvalid", "PermissionDenied"]


class InvitationInvalid(ApplicationError):
    code = "invitation_invalid"
