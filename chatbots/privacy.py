"""Data subject requests (services): export or erase everything Parlor holds about one visitor.

A visitor is found by their visitor id, by an e-mail address their conversations were identified with
(``visitor_attributes``), or by one of their conversation ids; from the conversations found, every other
conversation of the same visitor ids belongs to them too.

Which rows belong to a visitor is discovered, not listed: every model of the project's apps with a foreign
key to ``Conversation`` (messages today; leads, handoff notes and the like when they come), and every model
that declares ``visitor_fields`` (names of its fields holding a visitor id or e-mail address, for data kept
without a conversation). A new model is exported and erased without touching this module.

Both run as Celery jobs (``subject_request_run``), claimed with a conditional UPDATE and restarted by the
beat job ``subject_requests_resume`` when their worker died. An erasure is idempotent and crash-safe:
first the side stores (export files, Redis keys), then the rows in short batches — the conversations the
lookup itself matches last, so a retried job finds the visitor again until nothing is left.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import json
import logging
import re
import uuid
import zipfile
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import redis
from django.apps import apps
from django.conf import settings
from django.core import signing
from django.core.files.base import ContentFile
from django.db import models, transaction
from django.db.models import F, Q, QuerySet
from django.forms.models import model_to_dict
from django.http import FileResponse
from django.template.loader import render_to_string
from django.utils import timezone

from accounts.audit import audit_record
from accounts.models import AuditAction, Organization, User
from chatbots import crypto
from chatbots.conversation_summary import conversation_summaries_forget
from chatbots.exceptions import SubjectRequestInvalid, SubjectRequestNotFound
from chatbots.exports import csv_cell
from chatbots.models import (
    Conversation,
    ConversationExport,
    DataSubjectRequest,
    Message,
    SubjectLookup,
    SubjectRequestKind,
    SubjectRequestStatus,
)
from chatbots.question_groups import question_panels_forget

logger = logging.getLogger(__name__)

PROJECT_APPS = ("accounts", "webhooks", "knowledge", "chatbots", "analytics")
EMAIL_KEYS = ("email", "e-mail")
CONVERSATION_BATCH = 200
DOWNLOAD_SALT = "parlor.subject-request-download"
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")


# --- finding the visitor -------------------------------------------------------------------------------
@dataclass
class Subject:
    """A visitor's conversations: ``direct`` ones match the lookup itself, ``related`` share a visitor id."""

    direct: list[uuid.UUID] = field(default_factory=list)
    related: list[uuid.UUID] = field(default_factory=list)
    visitor_ids: set[str] = field(default_factory=set)
    emails: set[str] = field(default_factory=set)

    @property
    def conversation_ids(self) -> list[uuid.UUID]:
        return [*self.related, *self.direct]

    def identifiers(self) -> set[str]:
        return {*self.visitor_ids, *self.emails, *(str(c) for c in self.conversation_ids)}


def normalize_lookup(*, lookup: str, value: str) -> str:
    """The identifier as it is searched, or SubjectRequestInvalid."""
    value = (value or "").strip()
    if lookup not in SubjectLookup.values or not value or len(value) > 254:
        raise SubjectRequestInvalid("Give a visitor id, an e-mail address or a conversation id.")
    if lookup == SubjectLookup.EMAIL:
        if not EMAIL.match(value):
            raise SubjectRequestInvalid("That is not an e-mail address.")
        return value.lower()
    if lookup == SubjectLookup.CONVERSATION:
        try:
            return str(uuid.UUID(value))
        except ValueError:
            raise SubjectRequestInvalid(
                "A conversation id looks like 0b6c…-…; copy it from the inbox."
            ) from None
    return value


def guess_lookup(value: str) -> str:
    """What a pasted identifier most likely is: an e-mail address, a conversation id or a visitor id."""
    value = (value or "").strip()
    if EMAIL.match(value):
        return SubjectLookup.EMAIL
    try:
        uuid.UUID(value)
        return SubjectLookup.CONVERSATION
    except ValueError:
        return SubjectLookup.VISITOR_ID


def _email_q(email: str) -> Q:
    query = Q()
    for key in EMAIL_KEYS:
        query |= Q(**{f"visitor_attributes__{key}__iexact": email})
    return query


def subject_find(*, organization_id: int, lookup: str, value: str) -> Subject:
    """The visitor's conversations in one organization (nothing of another organization, ever)."""
    value = normalize_lookup(lookup=lookup, value=value)
    conversations = Conversation.objects.filter(organization_id=organization_id)
    if lookup == SubjectLookup.VISITOR_ID:
        direct = conversations.filter(visitor_id=value)
    elif lookup == SubjectLookup.EMAIL:
        direct = conversations.filter(_email_q(value))
    else:
        direct = conversations.filter(pk=value)
    subject = Subject()
    for pk, visitor_id, attributes in direct.values_list("pk", "visitor_id", "visitor_attributes"):
        subject.direct.append(pk)
        if visitor_id:
            subject.visitor_ids.add(visitor_id)
        subject.emails |= _emails_in(attributes)
    if lookup == SubjectLookup.VISITOR_ID:
        subject.visitor_ids.add(value)
    if lookup == SubjectLookup.EMAIL:
        subject.emails.add(value)
    _add_records_without_conversation(organization_id, subject)
    if subject.visitor_ids:
        subject.related = list(
            conversations.filter(visitor_id__in=subject.visitor_ids)
            .exclude(pk__in=subject.direct)
            .values_list("pk", flat=True)
        )
    return subject


def _add_records_without_conversation(organization_id: int, subject: Subject) -> None:
    """Records kept without a conversation that name both a visitor id and an e-mail address (a lead left
    before chatting) tie the two together: the visitor found by one is found by the other too."""
    for model, lookup in visitor_data_models():
        names = getattr(model, "visitor_fields", ())
        if lookup != "visitor_id" or not any(
            isinstance(model._meta.get_field(n), models.EmailField) for n in names
        ):
            continue
        email_field = next(n for n in names if isinstance(model._meta.get_field(n), models.EmailField))
        query = Q(visitor_id__in=subject.visitor_ids) if subject.visitor_ids else Q()
        for email in subject.emails:
            query |= Q(**{f"{email_field}__iexact": email})
        if not query:
            continue
        rows = model._default_manager.filter(query, organization_id=organization_id)
        for visitor_id, email in rows.values_list("visitor_id", email_field):
            if visitor_id:
                subject.visitor_ids.add(visitor_id)
            if email:
                subject.emails.add(email.strip().lower())


def _emails_in(attributes: Any) -> set[str]:
    if not isinstance(attributes, dict):
        return set()
    return {str(attributes[k]).strip().lower() for k in EMAIL_KEYS if isinstance(attributes.get(k), str)}


def subject_hash(*, organization_id: int, value: str) -> str:
    """A keyed hash of one identifier (per organization), so a request can be matched without keeping it."""
    key = f"{settings.SECRET_KEY}:subject:{organization_id}".encode()
    return hmac.new(key, value.strip().lower().encode(), hashlib.sha256).hexdigest()


def subject_hint(*, lookup: str, value: str) -> str:
    """A masked label for people reading the request list ("j…@e…", "v…3f"), never the identifier."""
    if lookup == SubjectLookup.EMAIL and "@" in value:
        local, domain = value.split("@", 1)
        return f"{local[:1]}…@{domain[:1]}…"
    return f"{value[:1]}…{value[-2:]}" if len(value) > 4 else "…"


# --- what belongs to a visitor, discovered --------------------------------------------------------------
def visitor_data_models() -> list[tuple[type[models.Model], str]]:
    """Models holding a visitor's rows with the lookup that selects them: ``conversation`` lookups for
    models with a foreign key to Conversation, or the fields a model lists in ``visitor_fields``."""
    found: list[tuple[type[models.Model], str]] = []
    for model in apps.get_models():
        opts = model._meta
        if opts.app_label not in PROJECT_APPS or opts.proxy or model is Conversation:
            continue
        for f in opts.concrete_fields:
            if f.is_relation and f.related_model is Conversation:
                found.append((model, f.name))
        for name in getattr(model, "visitor_fields", ()):
            found.append((model, name))
    return found


def _rows_of(model: type[models.Model], lookup: str, subject: Subject, organization_id: int) -> QuerySet:
    manager = model._default_manager.filter(organization_id=organization_id)
    target = model._meta.get_field(lookup)
    if target.is_relation:
        return manager.filter(**{f"{lookup}__in": subject.conversation_ids})
    values = subject.emails if isinstance(target, models.EmailField) else subject.visitor_ids | subject.emails
    query = Q()
    for value in values:
        query |= Q(**{f"{lookup}__iexact": value})
    return manager.filter(query) if values else manager.none()


# --- requests ------------------------------------------------------------------------------------------
@transaction.atomic
def subject_request_create(
    *,
    organization: Organization,
    kind: str,
    lookup: str,
    value: str,
    user: User | None = None,
    api_key: Any = None,
) -> DataSubjectRequest:
    """Record the request and queue its job (after commit); the identifier is stored encrypted until the
    job is done."""
    from chatbots.tasks import subject_request_task

    if kind not in SubjectRequestKind.values:
        raise SubjectRequestInvalid("Choose export or erase.")
    value = normalize_lookup(lookup=lookup, value=value)
    request = DataSubjectRequest.objects.create(
        organization=organization,
        requested_by=user if user is not None and user.is_authenticated else None,
        requested_via=f"API key {api_key.prefix}" if api_key is not None else "admin",
        kind=kind,
        lookup=lookup,
        lookup_encrypted=crypto.encrypt(value),
        subject_hint=subject_hint(lookup=lookup, value=value),
    )
    action = (
        AuditAction.EXPORT_REQUESTED if kind == SubjectRequestKind.EXPORT else AuditAction.ERASURE_REQUESTED
    )
    audit_record(organization=organization, action=action, actor=request.requested_by, api_key=api_key,
                 target=f"data subject request {request.pk}",
                 detail={"lookup": lookup, "subject": request.subject_hint})  # fmt: skip
    transaction.on_commit(lambda: subject_request_task.delay(request.pk))
    return request


def _claim(request_id: int) -> bool:
    """One run at a time: a queued request, or a running one whose worker stopped beating."""
    now = timezone.now()
    stale = now - timedelta(seconds=settings.PRIVACY_STALE_SECONDS)
    return bool(
        DataSubjectRequest.objects.filter(
            Q(status=SubjectRequestStatus.QUEUED)
            | Q(status=SubjectRequestStatus.RUNNING, heartbeat_at__lt=stale),
            pk=request_id,
        ).update(status=SubjectRequestStatus.RUNNING, started_at=now, heartbeat_at=now, error="")
    )


def _beat(request_id: int, **values: Any) -> None:
    DataSubjectRequest.objects.filter(pk=request_id).update(heartbeat_at=timezone.now(), **values)


def subject_request_run(*, request_id: int) -> DataSubjectRequest | None:
    """The job: build the export or carry out the erasure. Safe to run twice or after a crash."""
    if not _claim(request_id):
        return None
    request = DataSubjectRequest.objects.get(pk=request_id)
    try:
        value = crypto.decrypt(request.lookup_encrypted)
        if request.kind == SubjectRequestKind.EXPORT:
            _export(request, value)
        else:
            _erase(request, value)
    except Exception:
        logger.exception("data subject request %s failed", request_id)
        if request.kind == SubjectRequestKind.ERASE:
            # An erasure must happen: queued again, the resume beat job retries it until it is done.
            DataSubjectRequest.objects.filter(pk=request_id).update(
                status=SubjectRequestStatus.QUEUED,
                error="The last attempt failed; it is retried automatically.",
            )
        else:
            DataSubjectRequest.objects.filter(pk=request_id).update(
                status=SubjectRequestStatus.FAILED, error="The export could not be written; request it again."
            )
        raise
    request.refresh_from_db()
    return request


def subject_requests_resume() -> int:
    """Beat job: queue again the requests whose worker died (running without a heartbeat) or whose task
    message was lost (queued for long)."""
    from chatbots.tasks import subject_request_task

    stale = timezone.now() - timedelta(seconds=settings.PRIVACY_STALE_SECONDS)
    ids = list(
        DataSubjectRequest.objects.filter(
            Q(status=SubjectRequestStatus.RUNNING, heartbeat_at__lt=stale)
            | Q(status=SubjectRequestStatus.QUEUED, created_at__lt=stale)
        ).values_list("pk", flat=True)
    )
    for request_id in ids:
        subject_request_task.delay(request_id)
    return len(ids)


# --- export --------------------------------------------------------------------------------------------
def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if hasattr(value, "name") and hasattr(value, "storage"):  # a FieldFile
        return value.name or None
    return str(value)


def subject_data(*, organization_id: int, subject: Subject) -> dict[str, Any]:
    """Everything held about the visitor, as plain JSON data."""
    conversations = []
    queryset = Conversation.objects.filter(pk__in=subject.conversation_ids).select_related("bot")
    for conversation in queryset.order_by("created_at"):
        messages = [
            {
                "id": m.pk,
                "created_at": m.created_at.isoformat(),
                "role": m.role,
                "operator_name": m.operator_name or None,  # who answered, when a person did
                "text": m.text,
                "status": m.status,
                "sources": [s.get("title", "") for s in m.sources or [] if isinstance(s, dict)],
                "feedback": m.feedback or None,
                "feedback_comment": m.feedback_comment or None,
            }
            for m in Message.objects.filter(conversation=conversation).order_by("created_at", "id")
        ]
        conversations.append(
            {
                "id": str(conversation.pk),
                "bot": conversation.bot.name,
                "channel": conversation.channel,
                "visitor_id": conversation.visitor_id,
                "visitor_attributes": conversation.visitor_attributes,
                "started_at": conversation.created_at.isoformat(),
                "last_message_at": conversation.last_message_at.isoformat(),
                "messages": messages,
            }
        )
    other: dict[str, dict[Any, dict[str, Any]]] = {}
    for model, lookup in visitor_data_models():
        if model is Message:
            continue
        for row in _rows_of(model, lookup, subject, organization_id):  # a row found by several lookups: once
            other.setdefault(model._meta.label, {})[row.pk] = _jsonable(model_to_dict(row))
    return {
        "generated_at": timezone.now().isoformat(),
        "visitor_ids": sorted(subject.visitor_ids),
        "emails": sorted(subject.emails),
        "conversations": conversations,
        "other_records": {label: list(rows.values()) for label, rows in other.items()},
    }


def _csv(data: dict[str, Any]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    columns = [
        "conversation_id",
        "bot",
        "visitor_id",
        "created_at",
        "role",
        "text",
        "feedback",
        "feedback_comment",
    ]
    writer.writerow(columns)
    for conversation in data["conversations"]:
        for m in conversation["messages"]:
            row = [conversation["id"], conversation["bot"], conversation["visitor_id"], m["created_at"], m["role"],
                   m["text"], m["feedback"], m["feedback_comment"]]  # fmt: skip
            writer.writerow([csv_cell(v) for v in row])
    return out.getvalue()


def _export(request: DataSubjectRequest, value: str) -> None:
    subject = subject_find(organization_id=request.organization_id, lookup=request.lookup, value=value)
    data = subject_data(organization_id=request.organization_id, subject=subject)
    _beat(request.pk, progress=50)
    html = render_to_string("chatbots/privacy/subject_export.html", {"data": data, "request": request})
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("data.json", json.dumps(data, ensure_ascii=False, indent=2))
        archive.writestr("transcripts.html", html)
        archive.writestr("messages.csv", _csv(data))
    if request.file:
        request.file.delete(save=False)  # a re-run replaces the file of the crashed one
    request.file.save(f"subject-export-{request.pk}.zip", ContentFile(buffer.getvalue()), save=False)
    now = timezone.now()
    hashes = sorted(
        subject_hash(organization_id=request.organization_id, value=v) for v in subject.identifiers()
    )
    DataSubjectRequest.objects.filter(pk=request.pk).update(
        file=request.file.name, status=SubjectRequestStatus.DONE, progress=100, lookup_encrypted="",
        subject_hashes=hashes, conversation_count=len(data["conversations"]),
        message_count=sum(len(c["messages"]) for c in data["conversations"]), finished_at=now,
        heartbeat_at=now, expires_at=now + timedelta(hours=settings.PRIVACY_EXPORT_HOURS),
    )  # fmt: skip


# --- erasure -------------------------------------------------------------------------------------------
def _erase_export_files(organization_id: int, subject: Subject) -> int:
    """Delete export files holding the visitor: subject exports matched by hash, inbox exports by content."""
    identifiers = subject.identifiers()
    if not identifiers:
        return 0
    hashes = {subject_hash(organization_id=organization_id, value=v) for v in identifiers}
    deleted = 0
    for export in DataSubjectRequest.objects.filter(
        organization_id=organization_id, kind=SubjectRequestKind.EXPORT
    ):
        if set(export.subject_hashes or []) & hashes:
            if export.file:
                export.file.delete(save=False)
                deleted += 1
            DataSubjectRequest.objects.filter(pk=export.pk).update(
                file="", subject_hashes=[], expires_at=None
            )
    needles = [v.lower() for v in identifiers]
    for export in ConversationExport.objects.filter(organization_id=organization_id):
        changes: dict[str, Any] = {}
        if any(n in json.dumps(export.filters).lower() for n in needles):
            changes["filters"] = {}  # an inbox search for the visitor's address names them
        if export.file and _file_mentions(export.file, needles):
            export.file.delete(save=False)
            changes.update(file="", expires_at=timezone.now())
            deleted += 1
        if changes:
            ConversationExport.objects.filter(pk=export.pk).update(**changes)
    return deleted


def _file_mentions(field_file: Any, needles: list[str]) -> bool:
    try:
        with field_file.open("rb") as handle:
            text = handle.read().decode("utf-8", errors="replace").lower()
    except FileNotFoundError:
        return False
    return any(n in text for n in needles)


def _redis_escape(value: str) -> str:
    return re.sub(r"([*?\[\]\\])", r"\\\1", value)


def _redis_urls() -> list[str]:
    """The Redis databases Parlor writes to: cache and rate limits, Celery's broker and results."""
    urls = [settings.REDIS_URL, settings.CELERY_BROKER_URL, settings.CELERY_RESULT_BACKEND]
    return list(dict.fromkeys(u for u in urls if u and u.startswith(("redis://", "rediss://", "unix://"))))


def _erase_redis(subject: Subject) -> int:
    """Delete Redis keys named after the visitor (rate-limit counters, answer slots, caches)."""
    values = {*subject.visitor_ids, *(str(c) for c in subject.conversation_ids)}
    deleted = 0
    for url in _redis_urls():
        client = redis.Redis.from_url(url)
        try:
            for value in values:
                for key in client.scan_iter(match=f"*{_redis_escape(value)}*", count=1000):
                    deleted += client.delete(key)
        finally:
            client.close()
    return deleted


def _erase_rows(request_id: int, organization_id: int, subject: Subject) -> None:
    """Rows in short transactions: messages in batches, then their conversations (related before direct)."""
    linked = []  # other models with a conversation: deleted explicitly, whatever their on_delete says
    for model, lookup in visitor_data_models():
        if not model._meta.get_field(lookup).is_relation:  # rows kept without a conversation
            _rows_of(model, lookup, subject, organization_id).delete()
        elif model is not Message:
            linked.append((model, lookup))
    ordered = subject.conversation_ids
    total = max(len(ordered), 1)
    for start in range(0, len(ordered), CONVERSATION_BATCH):
        batch = ordered[start : start + CONVERSATION_BATCH]
        conversation_summaries_forget(conversation_ids=batch)  # the inbox's copies of their words go first
        while True:
            ids = list(
                Message.objects.filter(conversation_id__in=batch).values_list("pk", flat=True)[
                    : settings.PRIVACY_ERASE_BATCH
                ]
            )
            if not ids:
                break
            with (
                transaction.atomic()
            ):  # the count moves with the rows, so a crash between them cannot skew it
                deleted = Message.objects.filter(pk__in=ids).delete()[0]
                _beat(request_id, message_count=F("message_count") + deleted)
        with transaction.atomic():
            for model, lookup in linked:
                model._default_manager.filter(**{f"{lookup}__in": batch}).delete()
            removed = Conversation.objects.filter(pk__in=batch, organization_id=organization_id).delete()[1]
            _beat(request_id, conversation_count=F("conversation_count") + removed.get(Conversation._meta.label, 0),
                  progress=min(99, 10 + int(89 * (start + len(batch)) / total)))  # fmt: skip


def _erase(request: DataSubjectRequest, value: str) -> None:
    subject = subject_find(organization_id=request.organization_id, lookup=request.lookup, value=value)
    _erase_export_files(request.organization_id, subject)
    _erase_redis(subject)
    _beat(request.pk, progress=10)
    _erase_rows(request.pk, request.organization_id, subject)
    question_panels_forget(organization_id=request.organization_id)  # the dashboard's cached questions
    now = timezone.now()
    with transaction.atomic():
        DataSubjectRequest.objects.filter(pk=request.pk).update(
            status=SubjectRequestStatus.DONE, progress=100, lookup_encrypted="", subject_hashes=[],
            finished_at=now, heartbeat_at=now,
        )  # fmt: skip
        request.refresh_from_db()
        audit_record(organization=request.organization_id, action=AuditAction.ERASURE_DONE,
                     target=f"data subject request {request.pk}",
                     detail={"conversations": request.conversation_count, "messages": request.message_count})  # fmt: skip


# --- downloads -----------------------------------------------------------------------------------------
def subject_export_available(*, request: DataSubjectRequest) -> DataSubjectRequest:
    if request.kind != SubjectRequestKind.EXPORT or request.status != SubjectRequestStatus.DONE:
        raise SubjectRequestNotFound("This export is not ready.")
    if not request.file or request.expires_at is None or request.expires_at <= timezone.now():
        raise SubjectRequestNotFound("This export has expired.")
    return request


def subject_export_response(request: DataSubjectRequest) -> FileResponse:
    """The export's archive as a download (streamed from storage)."""
    response = FileResponse(
        request.file.open("rb"), as_attachment=True,
        filename=f"visitor-data-{request.pk}.zip", content_type="application/zip",
    )  # fmt: skip
    response["Cache-Control"] = "private, no-store"
    return response


def subject_download_token(*, request: DataSubjectRequest) -> str:
    """A signed token naming the export and its organization; valid until the export expires."""
    return signing.dumps({"request": request.pk, "org": request.organization_id}, salt=DOWNLOAD_SALT)


def subject_request_by_token(*, token: str) -> DataSubjectRequest:
    try:
        data = signing.loads(token, salt=DOWNLOAD_SALT, max_age=settings.PRIVACY_EXPORT_HOURS * 3600)
        request = DataSubjectRequest.objects.get(pk=int(data["request"]), organization_id=int(data["org"]))
    except (signing.BadSignature, DataSubjectRequest.DoesNotExist, KeyError, TypeError, ValueError):
        raise SubjectRequestNotFound() from None
    return subject_export_available(request=request)


def subject_request_get(*, organization_id: int, request_id: Any) -> DataSubjectRequest:
    try:
        return DataSubjectRequest.objects.get(pk=int(request_id), organization_id=organization_id)
    except (DataSubjectRequest.DoesNotExist, TypeError, ValueError):
        raise SubjectRequestNotFound() from None


def subject_exports_purge(*, now: Any = None) -> int:
    """Delete expired export files (their links no longer work) and forget their hashes."""
    now = now or timezone.now()
    count = 0
    for request in DataSubjectRequest.objects.filter(expires_at__lte=now).exclude(file=""):
        request.file.delete(save=False)
        DataSubjectRequest.objects.filter(pk=request.pk).update(file="", subject_hashes=[])
        count += 1
    return count
