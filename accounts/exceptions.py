"""Domain errors. The API exception handler turns ``ApplicationError`` into a JSON 400 (or its status)."""

from __future__ import annotations


class ApplicationError(Exception):
    """A business rule said no; ``message`` is safe to show to the user."""

    status_code = 400
    code = "invalid"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class PermissionDenied(ApplicationError):
    status_code = 403
    code = "permission_denied"


class InvitationInvalid(ApplicationError):
    code = "invitation_invalid"
