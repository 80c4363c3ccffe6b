"""Leads (services): a visitor's name and e-mail address left in the widget, and the team's replies by e-mail.

A lead comes from the widget's lead form (chat socket frame ``lead``, see ``ChatConsumer.on_lead``): asked
before chatting or after some messages (``Bot.lead_capture``), or offered when nobody is available to
answer. It stores what the visitor agreed to (the consent text exactly as shown, and when), and writes the
name and e-mail address into the conversation's ``visitor_attributes`` so the inbox names the visitor.

Operators answer from the inbox (a lead's page, or the transcript of a conversation whose visitor gave an
e-mail address): the reply is sent by e-mail (Django's e-mail backend; the console in development) from the
organization's name and stored as a ``LeadReply`` with who sent it.

Privacy: leads and replies are found by ``visitor_fields`` (visitor id, e-mail address) and by their
conversation for export and erasure (``chatbots.privacy``), deleted with their organization, and by
retention with the conversations of the same age (``leads_expired_delete``).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from datetime import datetime
from email.utils import formataddr, parseaddr
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import EmailMessage
from django.core.validators import validate_email
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from accounts.models import Organization, User
from chatbots import webhook_events
from chatbots.exceptions import LeadInvalid, ReplyNotSent
from chatbots.exports import csv_cell
from chatbots.models import Bot, Conversation, Lead, LeadCapture, LeadReason, LeadReply, LeadStatus

MAX_NAME_CHARS = 120
MAX_SUBJECT_CHARS = 200
MAX_REPLY_CHARS = 20000
EMAIL_KEYS = ("email", "e-mail")

# The consent text a lead form shows when the bot has none of its own, in the widget's languages
# (frontend/dist/parlor/i18n.js). The lead stores the text the visitor saw; the server accepts only these
# or the bot's own text, so a stored consent is always one the organization actually offered.
CONSENT_DEFAULTS = {
    "en": "I agree that my name and e-mail address are stored so that the team can answer me by e-mail.",
    "de": "Ich bin einverstanden, dass mein Name und meine E-Mail-Adresse gespeichert werden, damit mir das "
    "Team per E-Mail antworten kann.",
    "fr": "J’accepte que mon nom et mon adresse e-mail soient enregistrés afin que l’équipe puisse me "
    "répondre par e-mail.",
    "es": "Acepto que se guarden mi nombre y mi dirección de correo electrónico para que el equipo pueda "
    "responderme por correo electrónico.",
}


# --- the widget's form ------------------------------------------------------------------------------------
def lead_consent_texts(bot: Bot) -> dict[str, str]:
    """The consent text per widget language: the bot's own text for every language, or the defaults."""
    custom = (bot.lead_consent_text or "").strip()
    return {language: custom for language in CONSENT_DEFAULTS} if custom else dict(CONSENT_DEFAULTS)


def lead_form_settings(bot: Bot) -> dict[str, Any]:
    """What the widget needs to show the lead form (public: part of the widget's appearance)."""
    return {
        "mode": bot.lead_capture or LeadCapture.OFF,
        "after": bot.lead_capture_after,
        "required": bot.lead_capture_required,
        "consent": lead_consent_texts(bot),
    }


def _clean_text(value: object, *, limit: int, what: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise LeadInvalid(f"The {what} must be text.")
    value = value.strip()
    if len(value) > limit:
        raise LeadInvalid(f"The {what} is too long (at most {limit} characters).")
    return value


def _clean_email(value: object) -> str:
    email = _clean_text(value, limit=254, what="e-mail address")
    try:
        validate_email(email)
    except ValidationError:
        raise LeadInvalid("Please give a valid e-mail address.") from None
    return email


@transaction.atomic
def lead_create(
    *,
    bot: Bot,
    email: object,
    name: object = "",
    message: object = "",
    reason: object = LeadReason.VISITOR,
    consent_given: object = False,
    consent_text: object = "",
    visitor_id: str = "",
    conversation: Conversation | None = None,
    language: str = "",
) -> Lead:
    """Store a lead from the widget (validated: a real e-mail address, consent given to a text the bot
    offers) and name the visitor in their conversation. Inputs are untrusted (a socket frame)."""
    email = _clean_email(email)
    name = _clean_text(name, limit=MAX_NAME_CHARS, what="name")
    message = _clean_text(message, limit=settings.CHAT_MAX_MESSAGE_CHARS, what="question")
    if reason not in LeadReason.values:
        raise LeadInvalid("Unknown reason for the lead form.")
    if consent_given is not True:
        raise LeadInvalid("Please agree to the consent text so the team may answer you.")
    consent = _clean_text(consent_text, limit=1000, what="consent text")
    if consent not in lead_consent_texts(bot).values():
        raise LeadInvalid("The consent text does not match this chat's; reload the page.")
    if conversation is not None and conversation.bot_id != bot.pk:
        raise LeadInvalid("This conversation belongs to another chat.")
    now = timezone.now()
    lead = Lead.objects.create(
        organization_id=bot.organization_id, bot=bot, conversation=conversation, visitor_id=visitor_id,
        name=name, email=email, message=message, reason=reason, language=language[:8],
        consent_text=consent, consent_given=True, consent_at=now,
    )  # fmt: skip
    if conversation is not None:
        conversation_identify(conversation=conversation, name=name, email=email)
    webhook_events.lead_created(lead=lead)
    return lead


def conversation_identify(*, conversation: Conversation, name: str, email: str) -> None:
    """Write the visitor's name and e-mail address into the conversation (the inbox shows them)."""
    given = {"email": email, **({"name": name} if name else {})}
    locked = Conversation.objects.select_for_update().get(pk=conversation.pk)
    attributes = {**(locked.visitor_attributes or {}), **given}
    Conversation.objects.filter(pk=locked.pk).update(visitor_attributes=attributes)
    conversation.visitor_attributes = attributes


@transaction.atomic
def lead_link_conversation(*, lead_id: int, conversation: Conversation) -> None:
    """A lead left before chatting joins the conversation its visitor's first message started."""
    lead = Lead.objects.select_for_update().filter(pk=lead_id, bot_id=conversation.bot_id).first()
    if lead is None or lead.conversation_id is not None:
        return
    lead.conversation = conversation
    lead.save(update_fields=["conversation"])
    conversation_identify(conversation=conversation, name=lead.name, email=lead.email)


# --- replies by e-mail ------------------------------------------------------------------------------------
def conversation_email(conversation: Conversation) -> str:
    """The e-mail address the conversation's visitor gave (identify call or lead form), or ``""``."""
    attributes = conversation.visitor_attributes if isinstance(conversation.visitor_attributes, dict) else {}
    for key in EMAIL_KEYS:
        value = attributes.get(key)
        if isinstance(value, str):
            try:
                validate_email(value.strip())
            except ValidationError:
                continue
            return value.strip()
    return ""


def _sender(organization: Organization) -> str:
    """The organization's name on the deployment's own address (SPF/DKIM stay valid for the site)."""
    _, address = parseaddr(settings.DEFAULT_FROM_EMAIL)
    return formataddr((f"{organization.name} via {settings.SITE_NAME}", address))


def _quoted(text: str) -> str:
    return "\n".join(f"> {line}" for line in text.splitlines())


def _send_reply(
    *,
    organization: Organization,
    bot: Bot,
    user: User,
    to: str,
    subject: object,
    body: object,
    lead: Lead | None,
    conversation: Conversation | None,
    quoted: str = "",
) -> LeadReply:
    subject = str(subject or "").strip()
    body = str(body or "").strip()
    if not body:
        raise ReplyNotSent("Write the reply first.")
    if len(body) > MAX_REPLY_CHARS or len(subject) > MAX_SUBJECT_CHARS:
        raise ReplyNotSent(
            f"At most {MAX_SUBJECT_CHARS} characters of subject and {MAX_REPLY_CHARS} of text."
        )
    subject = subject or f"Your question to {organization.name}"
    reply = LeadReply.objects.create(
        organization=organization, bot=bot, lead=lead, conversation=conversation, to_email=to, subject=subject,
        body=body, sent_by=user,
    )  # fmt: skip
    text = body + (f"\n\n{_quoted(quoted)}" if quoted else "")
    email = EmailMessage(
        subject, text, _sender(organization), [to], reply_to=[user.email] if user.email else None
    )
    try:
        email.send()
    except Exception as exc:  # SMTP refused, unreachable: the operator sees why; nothing is stored
        raise ReplyNotSent(f"The e-mail could not be sent ({type(exc).__name__}). Try again later.") from exc
    reply.sent_at = timezone.now()
    reply.save(update_fields=["sent_at"])
    return reply


@transaction.atomic
def lead_reply_send(*, lead: Lead, user: User, subject: object, body: object) -> LeadReply:
    """E-mail the visitor of a lead an operator's reply (their question quoted) and mark the lead replied."""
    reply = _send_reply(
        organization=lead.organization, bot=lead.bot, user=user, to=lead.email, subject=subject, body=body, lead=lead,
        conversation=lead.conversation, quoted=lead.message,
    )  # fmt: skip
    Lead.objects.filter(pk=lead.pk).update(status=LeadStatus.REPLIED, replied_at=reply.sent_at)
    lead.status, lead.replied_at = LeadStatus.REPLIED, reply.sent_at
    return reply


@transaction.atomic
def conversation_reply_send(
    *, conversation: Conversation, user: User, subject: object, body: object
) -> LeadReply:
    """E-mail the identified visitor of a conversation; their open leads of it count as replied."""
    to = conversation_email(conversation)
    if not to:
        raise ReplyNotSent("This visitor gave no e-mail address.")
    lead = conversation.leads.order_by("-created_at").first()
    reply = _send_reply(
        organization=conversation.organization, bot=conversation.bot, user=user, to=to, subject=subject, body=body, lead=lead,
        conversation=conversation,
    )  # fmt: skip
    conversation.leads.filter(status=LeadStatus.NEW).update(
        status=LeadStatus.REPLIED, replied_at=reply.sent_at
    )
    return reply


# --- lists, export, retention -----------------------------------------------------------------------------
LEAD_CSV_COLUMNS = ("created_at", "bot", "name", "email", "question", "reason", "status", "consent_given",
                    "consent_at", "consent_text", "conversation_id", "visitor_id", "replied_at")  # fmt: skip


def leads_csv_rows(leads: QuerySet[Lead]) -> Iterator[str]:
    """The leads as CSV lines (header first), spreadsheet formulas neutralised; streamed row by row."""
    out = io.StringIO()
    writer = csv.writer(out)

    def line(values: Iterable[Any]) -> str:
        out.seek(0)
        out.truncate()
        writer.writerow([csv_cell(v) for v in values])
        return out.getvalue()

    yield line(LEAD_CSV_COLUMNS)
    for lead in leads.select_related("bot").order_by("-created_at", "-id").iterator(chunk_size=500):
        yield line([
            lead.created_at.isoformat(), lead.bot.name, lead.name, lead.email, lead.message, lead.reason,
            lead.status, "yes" if lead.consent_given else "no",
            lead.consent_at.isoformat() if lead.consent_at else "", lead.consent_text,
            str(lead.conversation_id or ""), lead.visitor_id, lead.replied_at.isoformat() if lead.replied_at else "",
        ])  # fmt: skip


def leads_expired_delete(*, bot_id: int, before: datetime) -> int:
    """Retention: a bot's leads and e-mail replies created before ``before`` (a lead's replies go with it,
    even newer ones); returns how many leads were deleted."""
    with transaction.atomic():
        LeadReply.objects.filter(bot_id=bot_id, created_at__lt=before).delete()
        deleted = Lead.objects.filter(bot_id=bot_id, created_at__lt=before).delete()[1]
    return deleted.get(Lead._meta.label, 0)
