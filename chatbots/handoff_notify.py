"""E-mail to the organization's members when a visitor asks for a person (human handoff), for those whose
membership says so (``Membership.notify_handoff_email``). Sent by a Celery task after the request commits."""

from __future__ import annotations

from django.conf import settings
from django.urls import reverse

from accounts.emails import email_message, email_subject
from accounts.selectors import organization_members_to_email_on_handoff
from chatbots.models import Conversation, HandoffStatus, Message, MessageRole


def handoff_notify_operators(*, conversation_id: str) -> int:
    """Tell each member who wants it that this conversation waits for a person; returns e-mails sent.
    Nothing when it no longer waits (taken already, or handed back): a late job sends no stale alert."""
    conversation = Conversation.objects.select_related("bot").filter(pk=conversation_id).first()
    if conversation is None or conversation.handoff_status != HandoffStatus.WAITING:
        return 0
    recipients = list(
        organization_members_to_email_on_handoff(organization_id=conversation.organization_id).values_list(
            "email", flat=True
        )
    )
    if not recipients:
        return 0
    last = (
        Message.objects.filter(conversation=conversation, role=MessageRole.USER)
        .order_by("-created_at", "-id")
        .values_list("text", flat=True)
        .first()
    )
    url = settings.SITE_URL + reverse("admin:chatbots_conversation_change", args=[conversation.pk])
    text = (
        f"{conversation.visitor_label} asks for a person in a chat with {conversation.bot.name}.\n\n"
        f"Their last message: “{(last or '')[:500]}”\n\n"
        f"Take the conversation: {url}\n\n"
        "You get this e-mail because handoff e-mails are on for you; change it on the inbox's "
        "“Handoff notifications” page."
    )
    subject = email_subject(f"A visitor asks for a person ({conversation.bot.name})")
    sent = 0
    for address in recipients:  # one e-mail each: members never see each other's addresses
        sent += email_message(subject=subject, text=text, to=[address]).send()
    return sent
