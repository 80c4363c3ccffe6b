"""Sign-ins and failed sign-ins into the audit log.

Django's and allauth's authentication fire these signals from every way of signing in (password, social,
MFA), so they are the one place to observe them; the receivers only call the audit service.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.dispatch import receiver

from accounts.audit import audit_sign_in
from accounts.models import User


@receiver(user_logged_in, dispatch_uid="parlor_audit_sign_in")
def _signed_in(sender: Any, request: Any, user: User, **kwargs: Any) -> None:
    if request is not None and isinstance(user, User):
        audit_sign_in(user=user, request=request)


@receiver(user_login_failed, dispatch_uid="parlor_audit_sign_in_failed")
def _sign_in_failed(sender: Any, credentials: dict[str, Any], request: Any = None, **kwargs: Any) -> None:
    login = credentials.get("email") or credentials.get("username") or ""
    user = User.objects.filter(email__iexact=str(login)).first() if login else None
    if user is not None:  # an unknown address belongs to no organization: nothing to record
        audit_sign_in(user=user, request=request, failed=True)
