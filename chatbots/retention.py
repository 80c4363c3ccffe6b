"""Retention (services): delete conversations (and leads) older than an organization's (or a bot's) period.

Run by Celery beat (``retention_run_task``). Deletes in bounded batches — a page of expired conversations,
their messages ``RETENTION_BATCH`` at a time by primary key, each batch its own short statement — with a
short pause between batches, so a run over millions of rows never holds long locks or starves the chat.
The default is to keep conversations forever: only organizations or bots with a period are touched.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from accounts.audit import audit_events_expire, audit_record
from accounts.models import AuditAction, Organization
from chatbots.conversation_summary import conversation_summaries_rebuild
from chatbots.leads import leads_expired_delete
from chatbots.models import Bot, Conversation, Message
from chatbots.question_groups import question_panels_forget

CONVERSATION_PAGE = 100  # conversations whose message ids are read at once


@dataclass
class RetentionResult:
    conversations: int = 0
    messages: int = 0
    audit_events: int = 0
    leads: int = 0


def _bot_periods(organization: Organization) -> dict[int, int]:
    """Each bot's retention period in days (bots that keep forever are left out)."""
    periods = {}
    for bot_id, days in Bot.objects.filter(organization=organization).values_list("pk", "retention_days"):
        effective = days if days is not None else organization.conversation_retention_days
        if effective is not None:
            periods[bot_id] = effective
    return periods


def conversations_expire(*, bot_id: int, cutoff: datetime, batch: int | None = None) -> RetentionResult:
    """Delete one bot's conversations last active before ``cutoff``, in bounded batches."""
    batch = batch or settings.RETENTION_BATCH
    pause = settings.RETENTION_BATCH_PAUSE_MS / 1000
    result = RetentionResult()
    expired = Conversation.objects.filter(bot_id=bot_id, last_message_at__lt=cutoff)
    while True:
        page = list(expired.order_by("last_message_at").values_list("pk", flat=True)[:CONVERSATION_PAGE])
        if not page:
            return result
        # The page's message ids are read once, then deleted by primary key: re-querying "the next batch of
        # this page" would walk the index over the rows deleted so far (dead until vacuumed), ever slower.
        ids = list(
            Message.objects.filter(conversation_id__in=page).order_by("pk").values_list("pk", flat=True)
        )
        for start in range(0, len(ids), batch):
            result.messages += Message.objects.filter(pk__in=ids[start : start + batch]).delete()[0]
            if pause:
                time.sleep(pause)
        # Re-checked: a conversation that got a new message meanwhile is kept (its old messages are gone);
        # a message stored since the ids were read goes with its expired conversation.
        deleted = Conversation.objects.filter(pk__in=page, last_message_at__lt=cutoff).delete()[1]
        result.conversations += deleted.get(Conversation._meta.label, 0)
        result.messages += deleted.get(Message._meta.label, 0)
        # The kept ones lost their old messages: their inbox title, badges and search words follow.
        conversation_summaries_rebuild(conversation_ids=page)


def retention_run(*, now: datetime | None = None) -> RetentionResult:
    """The beat job: every organization's expired conversations and audit events."""
    now = now or timezone.now()
    total = RetentionResult()
    organizations = Organization.objects.filter(deletion_requested_at=None)
    with_periods = organizations.filter(
        Q(conversation_retention_days__isnull=False)
        | Q(pk__in=Bot.objects.filter(retention_days__isnull=False).values("organization_id"))
    )
    for organization in with_periods:
        result = RetentionResult()
        for bot_id, days in _bot_periods(organization).items():
            part = conversations_expire(bot_id=bot_id, cutoff=now - timedelta(days=days))
            result.conversations += part.conversations
            result.messages += part.messages
            # Leads (name, e-mail, question) are kept as long as the conversations they came from.
            result.leads += leads_expired_delete(bot_id=bot_id, before=now - timedelta(days=days))
        if result.conversations or result.messages or result.leads:
            question_panels_forget(organization_id=organization.pk)  # the dashboard's cached questions
            audit_record(organization=organization, action=AuditAction.RETENTION_RUN, target="conversations",
                         detail={"conversations": result.conversations, "messages": result.messages,
                                 **({"leads": result.leads} if result.leads else {})})  # fmt: skip
        total.conversations += result.conversations
        total.messages += result.messages
        total.leads += result.leads
    for organization in organizations.filter(audit_retention_days__isnull=False):
        total.audit_events += audit_events_expire(organization=organization, now=now)
    return total
