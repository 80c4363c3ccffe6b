"""Conversation exports (services): a filtered set of conversations written to CSV or JSON Lines by a Celery
job, with progress, downloadable through a link that expires.

The job walks the conversations in batches (a page of conversations, then their messages in one query)
and writes to a temporary file, so its memory does not grow with the size of the export. CSV cells that a
spreadsheet would run as a formula (starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return)
are prefixed with a single quote (OWASP's advice against CSV injection).
"""

from __future__ import annotations

import csv
import dataclasses
import json
import logging
import tempfile
from datetime import date, timedelta
from typing import Any

from django.conf import settings
from django.core.files import File
from django.db import transaction
from django.db.models import Q
from django.http import FileResponse
from django.utils import timezone

from accounts.models import Organization, User
from chatbots.models import Conversation, ConversationExport, ExportFormat, ExportStatus, Message
from chatbots.selectors import InboxFilters, conversations_filtered

logger = logging.getLogger(__name__)

BATCH_CONVERSATIONS = 500
STALE_RUN = timedelta(minutes=30)  # a run that started this long ago died with its worker: claim it again
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
CSV_COLUMNS = [
    "conversation_id", "bot", "channel", "visitor", "visitor_id", "conversation_started_at", "message_id",
    "created_at", "role", "text", "status", "error_code", "sources", "answered_from_faq", "answered_from_cache",
    "model", "prompt_tokens", "completion_tokens", "cost_usd", "first_token_ms", "latency_ms", "feedback",
    "feedback_comment", "operator_name",
]  # fmt: skip


def csv_cell(value: Any) -> str:
    """A value as a CSV cell that no spreadsheet runs as a formula."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_PREFIXES) else text


# --- filters as stored on the export -------------------------------------------------------------
def filters_to_json(filters: InboxFilters) -> dict[str, Any]:
    data = dataclasses.asdict(filters)
    for name in ("since", "until"):
        data[name] = data[name].isoformat() if data[name] else None
    return data


def filters_from_json(data: dict[str, Any]) -> InboxFilters:
    known = {f.name for f in dataclasses.fields(InboxFilters)}
    values = {k: v for k, v in (data or {}).items() if k in known}
    for name in ("since", "until"):
        if values.get(name):
            values[name] = date.fromisoformat(values[name])
    return InboxFilters(**values)


# --- request, build, purge ------------------------------------------------------------------------
def conversation_export_request(
    *, organization: Organization, user: User | None, filters: InboxFilters, format: str
) -> ConversationExport:
    """Queue an export of the organization's conversations that match ``filters`` (after commit)."""
    from chatbots.tasks import conversation_export_task

    if format not in ExportFormat.values:
        format = ExportFormat.CSV
    export = ConversationExport.objects.create(
        organization=organization, requested_by=user, format=format, filters=filters_to_json(filters)
    )
    transaction.on_commit(lambda: conversation_export_task.delay(export.pk))
    return export


def _claim(export_id: int) -> bool:
    """Only one run builds an export: a conditional UPDATE, also for a re-delivered task."""
    now = timezone.now()
    return bool(
        ConversationExport.objects.filter(
            Q(status=ExportStatus.QUEUED) | Q(status=ExportStatus.RUNNING, started_at__lt=now - STALE_RUN),
            pk=export_id,
        ).update(status=ExportStatus.RUNNING, started_at=now, progress=1, error="")
    )


def _conversation_batches(conversations: Any) -> Any:
    """Pages of conversations (with their bot) and their messages, ``BATCH_CONVERSATIONS`` at a time."""
    last_pk = None
    ordered = conversations.select_related("bot").order_by("pk")
    while True:
        page = ordered.filter(pk__gt=last_pk) if last_pk else ordered
        batch = list(page[:BATCH_CONVERSATIONS])
        if not batch:
            return
        last_pk = batch[-1].pk
        messages: dict[Any, list[Message]] = {c.pk: [] for c in batch}
        for message in Message.objects.filter(conversation_id__in=messages).order_by(
            "conversation_id", "created_at", "id"
        ):
            messages[message.conversation_id].append(message)
        yield [(c, messages[c.pk]) for c in batch]


def _message_fields(message: Message) -> dict[str, Any]:
    return {
        "message_id": message.pk, "created_at": message.created_at.isoformat(), "role": message.role,
        "text": message.text, "status": message.status, "error_code": message.error_code,
        "sources": [s.get("title", "") for s in message.sources or [] if isinstance(s, dict)],
        "answered_from_faq": message.answered_from_faq,
        "answered_from_cache": message.answered_from_cache, "model": message.model,
        "prompt_tokens": message.prompt_tokens, "completion_tokens": message.completion_tokens,
        "cost_usd": str(message.cost_usd) if message.cost_usd is not None else None,
        "first_token_ms": message.first_token_ms, "latency_ms": message.latency_ms,
        "feedback": message.feedback or None, "feedback_comment": message.feedback_comment,
        "operator_name": message.operator_name,  # a person's reply after a handoff (role "operator")
    }  # fmt: skip


def _conversation_fields(conversation: Conversation) -> dict[str, Any]:
    return {
        "conversation_id": str(conversation.pk), "bot": conversation.bot.name, "channel": conversation.channel,
        "visitor": conversation.visitor_label, "visitor_id": conversation.visitor_id,
        "conversation_started_at": conversation.created_at.isoformat(),
    }  # fmt: skip


def conversation_export_build(*, export_id: int) -> ConversationExport | None:
    """Write the export's file. Safe to run twice: a run that did not claim the export does nothing."""
    if not _claim(export_id):
        return None
    export = ConversationExport.objects.get(pk=export_id)
    try:
        conversations = conversations_filtered(
            Conversation.objects.filter(organization_id=export.organization_id),
            filters=filters_from_json(export.filters),
            organization_id=export.organization_id,
        )
        total = conversations.count()
        done = messages_written = 0
        with tempfile.TemporaryFile("w+", encoding="utf-8", newline="") as out:
            writer = csv.writer(out) if export.format == ExportFormat.CSV else None
            if writer is not None:
                writer.writerow(CSV_COLUMNS)
            for batch in _conversation_batches(conversations):
                for conversation, messages in batch:
                    head = _conversation_fields(conversation)
                    if writer is not None:
                        for message in messages:
                            row = {**head, **_message_fields(message)}
                            row["sources"] = "; ".join(row["sources"])
                            writer.writerow([csv_cell(row[column]) for column in CSV_COLUMNS])
                    else:
                        line = {**head, "visitor_attributes": conversation.visitor_attributes,
                                "messages": [_message_fields(m) for m in messages]}  # fmt: skip
                        out.write(json.dumps(line, ensure_ascii=False) + "\n")
                    messages_written += len(messages)
                done += len(batch)
                progress = min(99, 1 + int(98 * done / max(total, 1)))
                ConversationExport.objects.filter(pk=export_id).update(progress=progress)
            out.seek(0)
            name = f"conversations-{export.created_at:%Y%m%d-%H%M%S}-{export.pk}.{export.format}"
            export.file.save(name, File(out), save=False)
        now = timezone.now()
        ConversationExport.objects.filter(pk=export_id).update(
            file=export.file.name, status=ExportStatus.READY, progress=100, conversation_count=done,
            message_count=messages_written, finished_at=now,
            expires_at=now + timedelta(hours=settings.CONVERSATION_EXPORT_HOURS),
        )  # fmt: skip
    except Exception:
        logger.exception("conversation export %s failed", export_id)
        ConversationExport.objects.filter(pk=export_id).update(
            status=ExportStatus.FAILED, error="The export could not be written; try again."
        )
        raise
    export.refresh_from_db()
    return export


def conversation_exports_purge(*, now: Any = None) -> int:
    """Delete the files of expired exports (their links no longer work); the rows stay as a record."""
    now = now or timezone.now()
    expired = ConversationExport.objects.filter(expires_at__lte=now).exclude(file="")
    count = 0
    for export in expired:
        export.file.delete(save=False)
        ConversationExport.objects.filter(pk=export.pk).update(file="")
        count += 1
    return count


def export_file_response(export: ConversationExport) -> FileResponse:
    """The export's file as a download (streamed from storage, not read into memory)."""
    content_type = "text/csv" if export.format == ExportFormat.CSV else "application/x-ndjson"
    name = export.file.name.rsplit("/", 1)[-1]
    response = FileResponse(
        export.file.open("rb"), as_attachment=True, filename=name, content_type=content_type
    )
    response["Cache-Control"] = "private, no-store"
    return response
