"""allauth hooks: where to go after login, and organizations for users who sign up via a social account."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from allauth.account.adapter import DefaultAccountAdapter
from allauth.socialaccount.adapter import DefaultSocialAccountAdapter
from django.urls import reverse

from accounts.selectors import PENDING_INVITATION_SESSION_KEY, set_active_organization
from accounts.services import signup_complete

if TYPE_CHECKING:
    from django.http import HttpRequest


class AccountAdapter(DefaultAccountAdapter):
    def get_login_redirect_url(self, request: HttpRequest) -> str:
        """A pending invitation (link opened before signing in) is accepted first."""
        token = request.session.get(PENDING_INVITATION_SESSION_KEY)
        if token:
            return reverse("accounts:invitation", kwargs={"token": token})
        return super().get_login_redirect_url(request)


class SocialAccountAdapter(DefaultSocialAccountAdapter):
    def save_user(self, request: HttpRequest, sociallogin: Any, form: Any = None) -> Any:
        user = super().save_user(request, sociallogin, form)
        organization = signup_complete(
            user=user, invitation_token=request.session.pop(PENDING_INVITATION_SESSION_KEY, None)
        )
        set_active_organization(request, organization)
        return user
