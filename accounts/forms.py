"""The sign-up form: the person's name and their organization's name besides allauth's fields."""

from __future__ import annotations

from typing import TYPE_CHECKING

from allauth.account.adapter import get_adapter
from allauth.account.forms import SignupForm as AllauthSignupForm
from django import forms

from accounts.adapters import email_is_taken, email_release_unconfirmed_claims
from accounts.selectors import PENDING_INVITATION_SESSION_KEY, set_active_organization
from accounts.services import signup_complete

if TYPE_CHECKING:
    from django.http import HttpRequest

    from accounts.models import User


class SignupForm(AllauthSignupForm):
    full_name = forms.CharField(label="Your name", max_length=150, required=False)
    organization_name = forms.CharField(
        label="Company or team",
        max_length=200,
        required=False,
        help_text="Your organization in Parlor. You can rename it later.",
    )

    field_order = ["full_name", "email", "organization_name", "password1", "password2"]

    def validate_unique_email(self, value: str) -> str:
        if email_is_taken(value):
            # allauth's enumeration-safe path: no new account, an "account exists" mail to the address.
            return super().validate_unique_email(value)
        self.account_already_exists = False  # unconfirmed claims by other users do not count
        return get_adapter().validate_unique_email(value)

    def save(self, request: HttpRequest) -> User:
        if self.cleaned_data.get("email"):
            email_release_unconfirmed_claims(self.cleaned_data["email"])
        return super().save(request)

    def custom_signup(self, request: HttpRequest, user: User) -> None:
        adapter = get_adapter(request)
        stashed = adapter.unstash_verified_email(request)
        if stashed and stashed.lower() == user.email.lower():
            # An invitation link proved this mailbox; allauth then marks the address verified.
            adapter.stash_verified_email(request, stashed)
        organization = signup_complete(
            user=user,
            organization_name=self.cleaned_data.get("organization_name", ""),
            full_name=self.cleaned_data.get("full_name", ""),
            invitation_token=request.session.pop(PENDING_INVITATION_SESSION_KEY, None),
        )
        set_active_organization(request, organization)
