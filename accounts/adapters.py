"""allauth hooks: where to go after login, which addresses are taken, and organizations for social sign-ups."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from allauth.account.adapter import DefaultAccountAdapter
from allauth.account.models import EmailAddress
from allauth.socialaccount.adapter import DefaultSocialAccountAdapter
from django.core.mail import EmailMessage, EmailMultiAlternatives
from django.urls import reverse

from accounts.emails import configured_site, email_html
from accounts.models import User
from accounts.selectors import PENDING_INVITATION_SESSION_KEY, set_active_organization
from accounts.services import signup_complete

if TYPE_CHECKING:
    from django.http import HttpRequest


def email_is_taken(email: str) -> bool:
    """True if ``email`` belongs to an account: it is someone's login address or an address they verified.

    allauth also counts addresses a user merely typed in and never confirmed. Anyone can type anyone's
    address, so that would let one user lock the owner of an address out of signing up (and out of an
    invitation sent there). An unconfirmed claim can never be confirmed once the owner verified the address
    (allauth keeps verified addresses unique), so ignoring it here is safe.
    """
    return (
        User.objects.filter(email__iexact=email).exists()
        or EmailAddress.objects.filter(email__iexact=email, verified=True).exists()
    )


def email_release_unconfirmed_claims(email: str) -> int:
    """Withdraw other users' unconfirmed claims on ``email`` when its owner signs up with it.

    allauth would otherwise set up no address at all for the new account (it skips any address another
    account has typed in). The claimant only loses a pending change they could never have confirmed.
    """
    if email_is_taken(email):
        return 0
    deleted, _ = EmailAddress.objects.filter(email__iexact=email, verified=False).delete()
    return deleted


class AccountAdapter(DefaultAccountAdapter):
    def send_mail(self, template_prefix: str, email: str, context: dict) -> None:
        """allauth's e-mails name the configured site (SITE_NAME, SITE_URL), not the request's host."""
        super().send_mail(template_prefix, email, {**context, "current_site": configured_site()})

    def render_mail(
        self,
        template_prefix: str,
        email: str | list[str],
        context: dict[str, Any],
        headers: dict[str, str] | None = None,
    ) -> EmailMessage:
        """Every account e-mail also gets an HTML part in the admin's look, made from its text."""
        message = super().render_mail(template_prefix, email, context, headers)
        if isinstance(message, EmailMultiAlternatives) and not message.alternatives:
            message.attach_alternative(email_html(subject=message.subject, text=message.body), "text/html")
        return message

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

    def pre_social_login(self, request: HttpRequest, sociallogin: Any) -> None:
        """Before a new account is set up from a provider: the provider proved these mailboxes, so other
        users' unconfirmed claims on them give way (allauth would refuse the sign-up otherwise)."""
        if sociallogin.is_existing:
            return
        for address in sociallogin.email_addresses:
            if address.verified:
                email_release_unconfirmed_claims(address.email)

    def authenticate_by_email(self, sociallogin: Any) -> tuple[Any, str] | None:
        """Sign in by a provider-verified address only into the account that verified it here too.

        allauth falls back to unverified addresses, which would sign the address's owner into the account
        of whoever typed that address in.
        """
        for address in sociallogin.email_addresses:
            if not address.verified or not self.can_authenticate_by_email(sociallogin, address.email):
                continue
            owner = (
                EmailAddress.objects.filter(email__iexact=address.email, verified=True)
                .select_related("user")
                .first()
            )
            if owner is not None:
                return owner.user, address.email
        return None
