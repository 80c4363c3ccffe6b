"""E-mails in Parlor's voice: the product's name and the site's address from settings, text + HTML.

allauth would greet with the request's host ("Hello from localhost:8101!"), since the sites framework is
not installed; every e-mail instead names ``SITE_NAME`` and links ``SITE_URL``, the deployment's public
address. The HTML part wraps the text in the admin's look, so the text stays the one source of wording.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string


@dataclass(frozen=True)
class ConfiguredSite:
    """What allauth's templates call ``current_site``, from settings instead of the request's host."""

    name: str
    domain: str
    url: str


def configured_site() -> ConfiguredSite:
    return ConfiguredSite(
        name=settings.SITE_NAME, domain=urlsplit(settings.SITE_URL).netloc, url=settings.SITE_URL
    )


def email_subject(subject: str) -> str:
    """``subject`` with the product's name in front, as every Parlor e-mail has it."""
    return f"[{settings.SITE_NAME}] {subject}"


def email_html(*, subject: str, text: str) -> str:
    """The HTML part for a text e-mail: the same words, links clickable, in the admin's colours."""
    return render_to_string(
        "accounts/email/layout.html", {"subject": subject, "text": text, "site": configured_site()}
    )


def email_message(*, subject: str, text: str, to: list[str]) -> EmailMultiAlternatives:
    """A text + HTML e-mail from ``DEFAULT_FROM_EMAIL``; ``subject`` is used as it is."""
    message = EmailMultiAlternatives(subject, text, settings.DEFAULT_FROM_EMAIL, to)
    message.attach_alternative(email_html(subject=subject, text=text), "text/html")
    return message
