"""The demo organization, admin user and bot that `manage.py up` creates on a fresh install."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.db import transaction

from accounts.models import Membership, Organization, Role, User
from chatbots.models import Bot

DEMO_ORG_SLUG = "demo"
DEMO_ADMIN_EMAIL = "admin@parlor.localhost"
DEMO_BOT_NAME = "Demo assistant"


@dataclass(frozen=True)
class DemoSeed:
    organization: Organization
    user: User
    password: str
    bot: Bot
    created: bool


def _demo_password() -> str:
    """A random password kept in .parlor/ so every run prints the same working credentials."""
    path = Path(settings.DATA_DIR) / "demo-admin-password"
    if path.exists():
        return path.read_text().strip()
    password = secrets.token_urlsafe(12)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(password)
    path.chmod(0o600)
    return password


@transaction.atomic
def demo_seed() -> DemoSeed:
    """Create the demo data once; later runs return what exists (and repair the admin's password)."""
    password = _demo_password()
    organization, org_created = Organization.objects.get_or_create(
        slug=DEMO_ORG_SLUG, defaults={"name": "Demo Company"}
    )
    user = User.objects.filter(email=DEMO_ADMIN_EMAIL).first()
    if user is None:
        user = User.objects.create_superuser(DEMO_ADMIN_EMAIL, password, full_name="Demo Admin")
    elif not user.check_password(password):
        user.set_password(password)
        user.save(update_fields=["password"])
    Membership.objects.get_or_create(user=user, organization=organization, defaults={"role": Role.OWNER})
    bot = Bot.objects.filter(organization=organization, name=DEMO_BOT_NAME).first()
    if bot is None:
        bot = Bot.objects.create(organization=organization, name=DEMO_BOT_NAME)
    return DemoSeed(organization=organization, user=user, password=password, bot=bot, created=org_created)
