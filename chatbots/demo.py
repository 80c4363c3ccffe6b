"""The demo organization, its owner, its bot and the operator account that `manage.py up` creates.

The demo user is a customer (the demo organization's owner), so the first sign-in shows what a customer
sees; the operator (a superuser who sees every organization) is a separate account.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path

from allauth.account.models import EmailAddress
from django.conf import settings
from django.db import transaction

from accounts.models import Membership, Organization, Role, User
from chatbots.models import Bot
from chatbots.services import bot_create
from knowledge.models import SourceKind
from knowledge.services import source_create

DEMO_ORG_SLUG = "demo"
DEMO_ADMIN_EMAIL = "admin@parlor.localhost"
OPERATOR_EMAIL = "operator@parlor.localhost"
DEMO_BOT_NAME = "Demo assistant"
DEMO_KNOWLEDGE = """# What Parlor is

Parlor answers your website visitors from your own knowledge: documents, web pages and FAQs that you add
in the admin. Answers stream token by token and show their sources.

# Adding knowledge

Open Knowledge sources in the admin and add a file (PDF, DOCX, TXT, Markdown, HTML or CSV), a web page, a
whole website, some text or FAQ pairs. Parlor processes it in the background and shows its progress.
A source can serve several bots.

# Putting the bot on a website

Copy the embed snippet from the bot's page in the admin and paste it into your website's HTML. It is one
script tag. List the websites that may show the bot under allowed origins.

# Connecting a language model

Without a model, Parlor answers with the most relevant passages from your knowledge. To get written
answers, choose a provider (OpenAI, Azure OpenAI, Anthropic, Gemini, Mistral, OpenRouter, Groq, Ollama or
any OpenAI-compatible server), a model and an API key on the bot's page.
"""


@dataclass(frozen=True)
class DemoSeed:
    organization: Organization
    user: User
    password: str
    bot: Bot
    created: bool
    operator: User
    operator_password_file: Path


def _stored_password(name: str) -> str:
    """A random password kept in .parlor/ so every run prints the same working credentials."""
    path = Path(settings.DATA_DIR) / name
    if path.exists():
        return path.read_text().strip()
    password = secrets.token_urlsafe(12)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(password)
    path.chmod(0o600)
    return password


def _signable_user(email: str, password: str, *, full_name: str, operator: bool) -> User:
    """The user with ``email`` and ``password``, verified, a superuser exactly when ``operator``."""
    user = User.objects.filter(email=email).first()
    if user is None:
        create = User.objects.create_superuser if operator else User.objects.create_user
        user = create(email, password, full_name=full_name)
    else:
        changed = []
        if not user.check_password(password):
            user.set_password(password)
            changed.append("password")
        # Installs from before the split made the demo user a superuser: it is a customer now.
        if (user.is_superuser, user.is_staff) != (operator, operator):
            user.is_superuser = user.is_staff = operator
            changed += ["is_superuser", "is_staff"]
        if changed:
            user.save(update_fields=changed)
    # Sign-in requires a verified address (allauth); these accounts never get a verification mail.
    EmailAddress.objects.update_or_create(
        user=user, email=user.email, defaults={"verified": True, "primary": True}
    )
    return user


@transaction.atomic
def demo_seed() -> DemoSeed:
    """Create the demo data once; later runs return what exists (and repair the passwords)."""
    password = _stored_password("demo-admin-password")
    organization, org_created = Organization.objects.get_or_create(
        slug=DEMO_ORG_SLUG, defaults={"name": "Demo Company"}
    )
    user = _signable_user(DEMO_ADMIN_EMAIL, password, full_name="Demo Owner", operator=False)
    Membership.objects.get_or_create(user=user, organization=organization, defaults={"role": Role.OWNER})
    operator = _signable_user(
        OPERATOR_EMAIL, _stored_password("operator-password"), full_name="Parlor Operator", operator=True
    )
    bot = Bot.objects.filter(organization=organization, name=DEMO_BOT_NAME).first()
    if bot is None:
        bot = bot_create(
            organization=organization,
            name=DEMO_BOT_NAME,
            suggested_questions=["What is Parlor?", "How do I put the bot on my website?"],
        )
    if not bot.sources.exists():
        # Ingested by the Celery worker that `manage.py up` starts, once this transaction commits.
        bot.sources.add(
            source_create(
                organization=organization, kind=SourceKind.TEXT, title="About Parlor", text=DEMO_KNOWLEDGE
            )
        )
    return DemoSeed(
        organization=organization,
        user=user,
        password=password,
        bot=bot,
        created=org_created,
        operator=operator,
        operator_password_file=Path(settings.DATA_DIR) / "operator-password",
    )
