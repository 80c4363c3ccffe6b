"""Knowledge services: create, ingest, re-sync and delete sources (reads for chat are in selectors.py).

Ingestion is one pipeline for every kind of source: load blocks (parse a file / fetch pages / take text
or FAQ pairs) → structure-aware chunks → embeddings in batches (re-using the vectors of unchanged chunks,
found by content hash) → replace the source's chunks in one transaction. A retried, duplicated or killed
task therefore never leaves duplicates or a half-indexed source: the old chunks serve until the new ones
commit.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import logging
import tempfile
import uuid
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F
from django.db.models.functions import Now
from django.utils import timezone

from config import log_context, outbound
from config.input_rules import clean_text
from knowledge.chunking import ChunkDraft, chunk_blocks, passage_sentences
from knowledge.embedders import (
    Embedder,
    active_embedder,
    active_model_name,
    forget_serving_model,
    get_embedder,
)
from knowledge.exceptions import IngestError, TranscriptionSettingsError, TransientIngestError
from knowledge.healing import heartbeat, ingest_lease_end, queued_deadline, source_ingest_claim
from knowledge.media import AUDIO_EXTENSIONS, MEDIA_EXTENSIONS, VIDEO_EXTENSIONS
from knowledge.models import (
    REMOTE_KINDS,
    Chunk,
    EmbeddingState,
    FaqPair,
    Source,
    SourceKind,
    SourceStatus,
    Transcription,
    TranscriptionSettings,
)
from knowledge.parsing import (
    SUPPORTED_EXTENSIONS,
    Block,
    decode_text,
    extension_of,
    html_title,
    parse_file,
    parse_html,
    parse_markdown,
    parse_plain_text,
)
from knowledge.questions import SAMPLE_CHARS, text_language
from knowledge.versions import knowledge_changed
from webhooks.models import EventType
from webhooks.services import webhook_event

logger = logging.getLogger(__name__)

Progress = Callable[[int], None]


# --- creating and scheduling -------------------------------------------------------------------


def _enqueue_ingest(source_id: int) -> None:
    from knowledge.tasks import source_ingest_task

    transaction.on_commit(lambda: source_ingest_task.delay(source_id))


# Changing one of these re-ingests the source.
INGEST_FIELDS = ("kind", "file", "url", "text", "max_pages", "max_depth")


def upload_problem(*, name: str, size: int, kind: str = "") -> str:
    """Why an upload cannot be a source ("" when it can): checked before anything is stored. Audio and
    video files are welcome as any upload (they become audio or video sources)."""
    ext = extension_of(name)
    if kind == SourceKind.AUDIO and ext not in AUDIO_EXTENSIONS:
        return "Upload an audio file: MP3, M4A, WAV, OGG or WebM."
    if kind == SourceKind.VIDEO and ext not in VIDEO_EXTENSIONS:
        return "Upload a video file: MP4, MOV, WebM or MKV."
    if ext in MEDIA_EXTENSIONS:
        if size > settings.KNOWLEDGE_MEDIA_MAX_BYTES:
            return f"The recording is larger than {settings.KNOWLEDGE_MEDIA_MAX_BYTES / 1e6:.0f} MB."
        return "The file is empty." if size == 0 else ""
    if ext not in SUPPORTED_EXTENSIONS:
        return "Upload a PDF, DOCX, TXT, Markdown, HTML or CSV file, or an audio or video recording."
    if size > settings.KNOWLEDGE_MAX_FILE_BYTES:
        return f"The file is larger than {settings.KNOWLEDGE_MAX_FILE_BYTES / 1e6:.0f} MB."
    if size == 0:
        return "The file is empty."
    return ""


ALLOW_PRIVATE_HINT = (
    " To crawl a server on your own machine or network while developing, set "
    "KNOWLEDGE_ALLOW_PRIVATE_URLS=true (never in production)."
)


def source_url_problem(url: str) -> str | None:
    """Why Parlor would refuse to fetch ``url`` (not http(s), credentials in it, a loopback, private or
    metadata address), to say so in the form before the source is saved; None when it may be fetched. A
    name that does not resolve right now is left to the fetch, which reports it on the source (DNS can
    be briefly down; the address may exist by the time it is crawled)."""
    try:
        outbound.check_url(url, allow_private=settings.KNOWLEDGE_ALLOW_PRIVATE_URLS)
    except outbound.UnresolvableHost:
        return None
    except outbound.OutboundRefused as exc:
        reason = str(exc)
        if url.lower().startswith(("http://", "https://")) and "@" not in url.split("/")[2]:
            reason += ALLOW_PRIVATE_HINT  # the host itself is refused: name the development setting
        return reason
    return None


def source_input_problems(
    *, kind: str, file: object, url: str, text: str, resync_hours: int, faq_pairs: list | None = None
) -> dict[str, str]:
    """What keeps this input from being a source of ``kind``, per field ({} when nothing does); the admin
    form and the API ask the same. ``faq_pairs`` None: not known here (the admin's inline rows)."""
    problems = {}
    if kind in (SourceKind.FILE, SourceKind.AUDIO, SourceKind.VIDEO) and not file:
        problems["file"] = "Upload a file."
    elif kind in (SourceKind.AUDIO, SourceKind.VIDEO) and (
        problem := upload_problem(name=getattr(file, "name", "") or "", size=1, kind=kind)
    ):
        problems["file"] = problem  # the type only: the size was checked with the upload
    if (kind in REMOTE_KINDS or kind == SourceKind.MEDIA_URL) and not (url or "").strip():
        problems["url"] = "Enter the address."
    elif kind in REMOTE_KINDS and (refusal := source_url_problem(url.strip())):
        problems["url"] = refusal
    if kind == SourceKind.TEXT and not (text or "").strip():
        problems["text"] = "Enter the text."
    if faq_pairs is not None and kind == SourceKind.FAQ and not faq_pairs:
        problems["faq_pairs"] = "Add at least one question and answer."
    if faq_pairs and kind != SourceKind.FAQ:
        problems["faq_pairs"] = "Only FAQ sources have question/answer pairs."
    if resync_hours and kind not in REMOTE_KINDS:
        problems["resync_hours"] = "Only URL and website sources are re-synced."
    return problems


def upload_kind(*, kind: str, name: str) -> str:
    """An uploaded recording is an audio or video source even when added as a plain file."""
    if kind != SourceKind.FILE:
        return kind
    ext = extension_of(name)
    if ext in VIDEO_EXTENSIONS and ext != "webm":  # a .webm is usually a recorded voice message
        return SourceKind.VIDEO
    return SourceKind.AUDIO if ext in AUDIO_EXTENSIONS else kind


def _default_title(*, kind: str, file, url: str, text: str, faq_pairs: list[tuple[str, str]] | None) -> str:
    if kind in (SourceKind.FILE, SourceKind.AUDIO, SourceKind.VIDEO) and file is not None:
        return getattr(file, "name", "") or "Upload"
    if kind == SourceKind.FAQ and faq_pairs:
        return f"FAQ: {faq_pairs[0][0]}"
    return " ".join((url or text or kind).split())[:80]


@dataclasses.dataclass(frozen=True)
class FaqOrigin:
    """The chat message (and its conversation) a new FAQ pair corrects: recorded on the pair."""

    message_id: int
    conversation_id: uuid.UUID | str


def _faq_pairs_replace(source: Source, pairs: list[tuple[str, str]], origin: FaqOrigin | None = None) -> None:
    """Make ``pairs`` the source's FAQ. A pair that stays as it was keeps its row: its vector, where it
    came from and how often it has answered survive an edit of the others. New rows get ``origin``."""
    wanted: dict[tuple[str, str], None] = {}
    for q, a in pairs:
        if q.strip() and a.strip():
            wanted[(q.strip()[:1000], a.strip())] = None
    kept: set[tuple[str, str]] = set()
    stale: list[int] = []
    for pk, question, answer in source.faq_pairs.values_list("pk", "question", "answer"):
        if (question, answer) in wanted and (question, answer) not in kept:
            kept.add((question, answer))
        else:
            stale.append(pk)
    FaqPair.objects.filter(pk__in=stale).delete()
    FaqPair.objects.bulk_create(
        FaqPair(
            organization_id=source.organization_id, source=source, question=q, answer=a,
            origin_message_id=origin.message_id if origin else None,
            origin_conversation_id=origin.conversation_id if origin else None,
        )
        for q, a in wanted
        if (q, a) not in kept
    )  # fmt: skip
    knowledge_changed(organization_id=source.organization_id)


def faq_pair_count_answer(*, pair_id: int) -> None:
    """Count one answer given from an FAQ pair: a single UPDATE on the chat's path (no read, no race)."""
    FaqPair.objects.filter(pk=pair_id).update(answered_count=F("answered_count") + 1, last_answered_at=Now())


def source_create(
    *,
    organization,
    kind: str,
    title: str = "",
    file=None,
    url: str = "",
    text: str = "",
    faq_pairs: list[tuple[str, str]] | None = None,
    max_pages: int = 50,
    max_depth: int = 3,
    resync_hours: int = 0,
    faq_origin: FaqOrigin | None = None,
) -> Source:
    """Create a source and queue its ingestion (after the surrounding transaction commits). A blank
    ``title`` becomes the file name, the address, the text's start or the first FAQ question. Which bots
    answer from it is chatbots' business (``chatbots.services.source_set_bots``)."""
    if file is not None:
        kind = upload_kind(kind=kind, name=getattr(file, "name", "") or "")
    title = title.strip() or _default_title(kind=kind, file=file, url=url, text=text, faq_pairs=faq_pairs)
    with transaction.atomic():
        source = Source(
            organization=organization, kind=kind, title=title[:255], url=url, text=text,
            max_pages=max_pages, max_depth=max_depth, resync_hours=resync_hours, requeue_at=queued_deadline(),
        )  # fmt: skip
        if file is not None:
            source.file.save(getattr(file, "name", "upload"), file, save=False)
        source.save()
        if faq_pairs:
            _faq_pairs_replace(source, faq_pairs, faq_origin)
        _enqueue_ingest(source.pk)
    return source


def source_update(
    *,
    source: Source,
    data: dict[str, Any],
    faq_pairs: list[tuple[str, str]] | None = None,
    faq_origin: FaqOrigin | None = None,
) -> Source:
    """Change a source's settings (``data``: model fields) or replace its FAQ pairs (pairs that stay the
    same keep their rows; new ones record ``faq_origin``).
    A change to what is ingested queues a re-ingestion; the old chunks serve until the new ones commit."""
    with transaction.atomic():
        old_file = source.file.name if source.file else ""
        changed = {name for name, value in data.items() if name != "file" and getattr(source, name) != value}
        for name, value in data.items():
            if name != "file":
                setattr(source, name, value)
        if data.get("file") is not None:
            upload = data["file"]
            source.file.save(getattr(upload, "name", "upload"), upload, save=False)
            changed.add("file")
        if fields := [name for name in data if name != "file" or "file" in changed]:
            # Only these: a running ingestion writes the status and counts meanwhile.
            source.save(update_fields=[*fields, "updated_at"])
        if faq_pairs is not None:
            _faq_pairs_replace(source, faq_pairs, faq_origin)
            changed.add("faq_pairs")
        retitled_text = "title" in changed and source.kind == SourceKind.TEXT  # its title is indexed
        if changed & {*INGEST_FIELDS, "faq_pairs"} or retitled_text:
            source_request_ingest(source=source)
            source.refresh_from_db()
        if "file" in changed and old_file and old_file != source.file.name:
            storage = source.file.storage
            transaction.on_commit(lambda: storage.delete(old_file))
        if changed:
            knowledge_changed(organization_id=source.organization_id)
    return source


def source_request_ingest(*, source: Source) -> None:
    """Queue (re-)ingestion of ``source``: used after edits, by the re-sync button and the beat job."""
    Source.objects.filter(pk=source.pk).update(
        status=SourceStatus.QUEUED,
        progress=0,
        status_reason="",
        requeue_at=queued_deadline(),
        ingest_restarts=0,
    )
    source.status, source.progress, source.status_reason = SourceStatus.QUEUED, 0, ""
    _enqueue_ingest(source.pk)


def sources_resync_due(*, now=None) -> list[int]:
    """Queue the URL and website sources whose re-sync interval has passed; returns their ids."""
    now = now or timezone.now()
    due = []
    candidates = Source.objects.filter(
        kind__in=REMOTE_KINDS, resync_hours__gt=0,
        status__in=[SourceStatus.READY, SourceStatus.FAILED],
    )  # fmt: skip
    for source in candidates:
        if source.synced_at is None or source.synced_at + timedelta(hours=source.resync_hours) <= now:
            with transaction.atomic():
                source_request_ingest(source=source)
            due.append(source.pk)
    return due


def faq_pairs_from_csv(data: bytes) -> list[tuple[str, str]]:
    """FAQ pairs from a CSV with ``question`` and ``answer`` columns (or the first two columns)."""
    text = clean_text(decode_text(data))
    rows = [row for row in csv.reader(io.StringIO(text)) if any(cell.strip() for cell in row)]
    if not rows:
        raise IngestError("The FAQ file is empty.")
    header = [cell.strip().lower() for cell in rows[0]]
    if "question" in header and "answer" in header:
        q_index, a_index = header.index("question"), header.index("answer")
        rows = rows[1:]
    else:
        q_index, a_index = 0, 1
    pairs = [(row[q_index], row[a_index]) for row in rows if len(row) > max(q_index, a_index)]
    if not pairs:
        raise IngestError("No question/answer pairs were found; use columns “question” and “answer”.")
    return pairs


# --- ingestion ---------------------------------------------------------------------------------


def _set_progress(source_id: int, percent: int) -> None:
    Source.objects.filter(pk=source_id, status=SourceStatus.PROCESSING).update(
        progress=max(0, min(percent, 99))
    )


def source_webhook_event(*, source_id: int) -> None:
    """Tell the organization's webhooks that a source is ready or failed (docs/webhooks.md), from the
    row as it is now; call in the transaction that set its status."""
    source = Source.objects.filter(pk=source_id).first()
    if source is None or source.status not in (SourceStatus.READY, SourceStatus.FAILED):
        return
    event_type = EventType.SOURCE_READY if source.status == SourceStatus.READY else EventType.SOURCE_FAILED
    data = {
        "source": {
            "id": source.pk, "kind": source.kind, "title": source.title, "url": source.url,
            "status": source.status, "status_reason": source.status_reason, "chunk_count": source.chunk_count,
            "token_count": source.token_count, "page_count": source.page_count, "synced_at": source.synced_at,
        }
    }  # fmt: skip
    webhook_event(organization_id=source.organization_id, event_type=event_type, data=data)


def source_fail(*, source_id: int, reason: str) -> None:
    with transaction.atomic():
        Source.objects.filter(pk=source_id).update(
            status=SourceStatus.FAILED, status_reason=reason[:2000], progress=0
        )
        source_webhook_event(source_id=source_id)
    # A failed source's FAQ pairs stop answering: cached answers given beside them may no longer hold.
    for organization_id in Source.objects.filter(pk=source_id).values_list("organization_id", flat=True):
        knowledge_changed(organization_id=organization_id)


def _load_blocks(source: Source, progress: Progress) -> tuple[list[Block], int]:
    """The source's blocks and its page count (PDF pages or web pages)."""
    if source.is_media:
        return _titled(source, source_transcribe(source=source, progress=progress)), 0
    if source.kind == SourceKind.FILE:
        if not source.file:
            raise IngestError("No file was uploaded.")
        try:
            with source.file.open("rb") as handle:
                data = handle.read(settings.KNOWLEDGE_MAX_FILE_BYTES + 1)
        except FileNotFoundError:
            raise IngestError("The uploaded file is missing; upload it again.") from None
        blocks = parse_file(filename=source.file.name, data=data)
        pages = max((block.page or 0 for block in blocks), default=0)
        return blocks, pages
    if source.kind == SourceKind.TEXT:
        if not source.text.strip():
            raise IngestError("The text is empty.")
        return _titled(source, parse_markdown(source.text)), 0
    if source.kind == SourceKind.FAQ:
        pairs = list(source.faq_pairs.all())
        if not pairs:
            raise IngestError("Add at least one question with its answer.")
        return [Block(text=f"Q: {p.question}\nA: {p.answer}", heading=p.question[:500]) for p in pairs], 0
    if source.is_remote:
        from knowledge.fetching import crawl

        if not source.url:
            raise IngestError("No address was given.")
        single = source.kind == SourceKind.URL
        max_pages = 1 if single else max(1, source.max_pages)
        result = crawl(
            source.url,
            max_pages=max_pages,
            max_depth=0 if single else source.max_depth,
            on_page=lambda n: progress(int(40 * n / max_pages)),
        )
        blocks: list[Block] = []
        for page in result.pages:
            try:
                text = decode_text(page.body)
            except IngestError:
                text = page.body.decode("latin-1")  # web pages without a UTF-8 body still carry text
            if page.content_type == "text/plain":
                page_blocks = [Block(text=b.text, kind=b.kind, url=page.url) for b in parse_plain_text(text)]
            else:
                title = html_title(text) or page.url
                try:
                    page_blocks = [
                        Block(text=title, kind="heading", level=0, url=page.url),
                        *parse_html(text, url=page.url),
                    ]
                except IngestError:
                    if single:
                        raise
                    continue
            blocks.extend(page_blocks)
        if not result.pages:
            reason = (
                "robots.txt does not allow fetching it"
                if result.skipped_by_robots
                else "no page could be fetched"
            )
            raise IngestError(f"Nothing was ingested from {source.url}: {reason}.")
        if not any(block.kind != "heading" for block in blocks):
            raise IngestError("The pages have no readable text.")
        return blocks, len(result.pages)
    raise IngestError(f"Unknown source kind {source.kind!r}.")


def _titled(source: Source, blocks: list[Block]) -> list[Block]:
    """A text source's blocks under its title, as a web page's are under its ``<title>``: the title
    becomes the top of every chunk's heading path, so it is weighted like a heading in the full-text
    index and gives each chunk's vector its context. A title that is only the default (the text's first
    words, or its address) adds nothing and is left out."""
    title = " ".join(source.title.split())
    if not title or title == _default_title(
        kind=source.kind, file=None, url=source.url, text=source.text, faq_pairs=None
    ):
        return blocks
    if blocks and blocks[0].kind == "heading" and " ".join(blocks[0].text.split()) == title:
        return blocks  # the text opens with its title already
    return [Block(text=title, kind="heading", level=0), *blocks]


def embedding_text(heading: str, content: str) -> str:
    """What a chunk's vector is computed from: its heading gives a passage its context."""
    return f"{heading}\n{content}" if heading else content


def chunk_sentences(content: str, *, tabular: bool) -> list[str]:
    """The sentences of a chunk that get vectors of their own: none for table rows, nor with
    KNOWLEDGE_SENTENCE_VECTORS off."""
    return passage_sentences(content) if settings.KNOWLEDGE_SENTENCE_VECTORS and not tabular else []


ChunkVectors = tuple[list[float], list[list[float]]]  # a chunk's own vector, its sentences' vectors


def embed_chunks(embedder: Embedder, rows: list[tuple[str, str, bool]]) -> list[ChunkVectors]:
    """Each (heading, content, tabular)'s chunk vector and sentence vectors, in one call to the embedder."""
    texts: list[str] = []
    counts: list[int] = []
    for heading, content, tabular in rows:
        sentences = chunk_sentences(content, tabular=tabular)
        part = [embedding_text(heading, text) for text in (content, *sentences)]
        texts.extend(part)
        counts.append(len(part))
    vectors = embedder.embed_passages(texts)
    out = []
    start = 0
    for count in counts:
        out.append((vectors[start], vectors[start + 1 : start + count]))
        start += count
    return out


def _embed(
    source: Source, drafts: list[ChunkDraft], progress: Progress, start: int
) -> tuple[list[ChunkVectors], str]:
    """Chunk and sentence vectors for ``drafts``; chunks whose content is unchanged keep their stored
    vectors (no re-embedding)."""
    model = active_model_name()
    known = {
        content_hash: (vector, sentence_vectors)
        for content_hash, vector, sentence_vectors in Chunk.objects.filter(
            source=source, embedding_model=model, embedding__isnull=False
        ).values_list("content_hash", "embedding", "sentence_embeddings")
    }
    vectors: list[ChunkVectors | None] = []
    for draft in drafts:
        stored = known.get(draft.content_hash)
        # A chunk stored before sentences had vectors gets them now.
        complete = stored is not None and len(stored[1]) == len(
            chunk_sentences(draft.content, tabular=draft.tabular)
        )
        vectors.append(stored if complete else None)
    missing = [i for i, vector in enumerate(vectors) if vector is None]
    embedder = active_embedder()
    batch = max(1, settings.KNOWLEDGE_EMBED_BATCH)
    for offset in range(0, len(missing), batch):
        indexes = missing[offset : offset + batch]
        computed = embed_chunks(
            embedder, [(drafts[i].heading, drafts[i].content, drafts[i].tabular) for i in indexes]
        )
        for i, pair in zip(indexes, computed, strict=True):
            vectors[i] = pair
        progress(start + int((95 - start) * (offset + len(indexes)) / len(missing)))
    return vectors, model  # type: ignore[return-value]


def _storable(block: Block) -> Block:
    """A block whose text PostgreSQL can store: a NUL anywhere in an uploaded file or a fetched page is not
    the customer's to fix, and must not fail the whole source."""
    return dataclasses.replace(
        block, text=clean_text(block.text), heading=clean_text(block.heading), url=clean_text(block.url)
    )


def source_ingest_blocks(
    *, source: Source, blocks: list[Block], page_count: int = 0, progress: Progress | None = None
) -> Source:
    """Chunk, embed and store ``blocks`` as the complete content of ``source`` (replacing what it had)."""
    progress = progress or (lambda percent: _set_progress(source.pk, percent))
    drafts = chunk_blocks([_storable(block) for block in blocks])
    if not drafts:
        raise IngestError("No readable text was found.")
    vectors, model = _embed(source, drafts, progress, start=40 if source.is_remote or source.is_media else 10)
    with transaction.atomic():
        # Shared lock on the embedding state: a model switch (knowledge_reembed) cannot swap the index
        # between our check and our commit, and vectors of a retired model are never stored.
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT 1 FROM knowledge_embeddingstate WHERE active_model = %s FOR SHARE", [model]
            )
            current = cursor.fetchone() is not None
        if not current:
            raise TransientIngestError(
                "The embedding model changed while ingesting; retrying with the new one."
            )
        locked = Source.objects.select_for_update().filter(pk=source.pk).first()
        if locked is None:  # deleted while we were working
            return source
        Chunk.objects.filter(source_id=source.pk).delete()
        Chunk.objects.bulk_create(
            [
                Chunk(
                    organization_id=source.organization_id,
                    source_id=source.pk,
                    ordinal=ordinal,
                    content=draft.content,
                    heading=draft.heading,
                    page=draft.page,
                    start_seconds=draft.start,
                    url=draft.url,
                    content_hash=draft.content_hash,
                    token_count=draft.token_estimate,
                    tabular=draft.tabular,
                    embedding=vector,
                    sentence_embeddings=sentence_vectors,
                    embedding_model=model,
                )
                for ordinal, (draft, (vector, sentence_vectors)) in enumerate(
                    zip(drafts, vectors, strict=True)
                )
            ],
            batch_size=500,
        )
        config = text_search_config(drafts)
        with connection.cursor() as cursor:
            cursor.execute(
                "UPDATE knowledge_chunk SET search_vector = "
                "setweight(to_tsvector(%s::regconfig, heading), 'A') || "
                "setweight(to_tsvector(%s::regconfig, content), 'B') WHERE source_id = %s",
                [config, config, source.pk],
            )
        Source.objects.filter(pk=source.pk).update(
            status=SourceStatus.READY, progress=100, status_reason="", chunk_count=len(drafts), text_search_config=config,
            token_count=sum(d.token_estimate for d in drafts), page_count=page_count, synced_at=timezone.now(),
        )  # fmt: skip
        knowledge_changed(organization_id=source.organization_id)
        source_webhook_event(source_id=source.pk)
    if len(drafts) >= 1000:
        # Fresh planner statistics for the postings, so BM25 keeps its index scan right after a big load
        # (autovacuum would only catch up within a minute or so).
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE knowledge_chunkterm")
    source.refresh_from_db()
    return source


def text_search_config(drafts: list[ChunkDraft]) -> str:
    """The full-text configuration for a source's chunks: ``KNOWLEDGE_FTS_CONFIG`` when it names one, else
    the language its text is written in (English stemming mangles German or French words, and keeps their
    stop words as if they mattered)."""
    if settings.KNOWLEDGE_FTS_CONFIG != "auto":
        return settings.KNOWLEDGE_FTS_CONFIG
    # Chunks spread over the source (its first ones may be a title page or a menu), ~SAMPLE_CHARS in all.
    step = max(1, len(drafts) // 20)
    return text_language("\n".join(draft.content for draft in drafts[::step])[:SAMPLE_CHARS])


def _embed_faq_pairs(source: Source) -> None:
    pairs = list(source.faq_pairs.all())
    model = active_model_name()
    todo = [pair for pair in pairs if pair.embedding is None or pair.embedding_model != model]
    if not todo:
        return
    vectors = active_embedder().embed_passages([pair.question for pair in todo])
    for pair, vector in zip(todo, vectors, strict=True):
        pair.embedding = vector
        pair.embedding_model = model
    FaqPair.objects.bulk_update(todo, ["embedding", "embedding_model"], batch_size=500)


def source_ingest(*, source_id: int, claim: bool = False) -> Source | None:
    """Run the whole pipeline for one source. ``IngestError`` fails the source with its reason;
    ``TransientIngestError`` propagates so the task can retry.

    ``claim``: the task's way in, since broker messages may be duplicated or late: run only when the
    source is queued or its last run died (``knowledge.healing``), else return None. Direct callers
    (benchmarks, tests, management commands) run it at once. Either way a heartbeat keeps the healing job
    from restarting a run that is alive."""
    if claim and not source_ingest_claim(source_id=source_id):
        logger.info("source %s is being ingested or done: message skipped", source_id)
        return None
    source = Source.objects.filter(pk=source_id).first()
    if source is None:
        return None
    log_context.bind(organization_id=source.organization_id)
    if not claim:
        Source.objects.filter(pk=source_id).update(
            status=SourceStatus.PROCESSING, progress=1, status_reason="", requeue_at=ingest_lease_end()
        )
    source.status = SourceStatus.PROCESSING
    with heartbeat(source_id=source_id):
        return _source_ingest_claimed(source)


def _source_ingest_claimed(source: Source) -> Source:
    source_id = source.pk

    def progress(percent: int) -> None:
        _set_progress(source_id, percent)

    try:
        blocks, pages = _load_blocks(source, progress)
        progress(40 if source.is_remote or source.is_media else 10)
        if source.kind == SourceKind.FAQ:
            _embed_faq_pairs(source)
        source = source_ingest_blocks(source=source, blocks=blocks, page_count=pages, progress=progress)
        logger.info(
            "source %s ready: %s chunks", source_id, source.chunk_count, extra={"source_id": source_id}
        )
        return source
    except IngestError as exc:
        logger.info("source %s failed: %s", source_id, exc.reason)
        source_fail(source_id=source_id, reason=exc.reason)
        source.refresh_from_db()
        return source


def source_delete(*, source: Source) -> None:
    """Delete a source with its chunks, FAQ pairs and uploaded file (the file once the delete commits)."""
    file_name = source.file.name if source.file else ""
    storage = source.file.storage if source.file else None
    with transaction.atomic():
        source.delete()  # chunks and FAQ pairs cascade
        knowledge_changed(organization_id=source.organization_id)
        if file_name and storage is not None:
            transaction.on_commit(lambda: storage.delete(file_name))


def knowledge_versions_bump_all() -> None:
    """Every organization's knowledge changed (a new embedding model, a restored backup): no answer cached
    before is served again."""
    for organization_id in Source.objects.values_list("organization_id", flat=True).distinct():
        knowledge_changed(organization_id=organization_id)


# --- audio and video -------------------------------------------------------------------------------


def _media_file(source: Source, work: Path) -> Path:
    """The recording as a file in ``work``: the upload copied, or the media URL downloaded (size-capped)."""
    target = work / "recording"
    limit = settings.KNOWLEDGE_MEDIA_MAX_BYTES
    if source.kind == SourceKind.MEDIA_URL:
        from knowledge.fetching import check_url, fetch, make_client

        if not source.url:
            raise IngestError("No address was given.")
        check_url(source.url)
        with make_client() as client, target.open("wb") as sink:
            page = fetch(source.url, client=client, max_bytes=limit, sink=sink)
        if page.status != 200:
            raise IngestError(f"{source.url} answered HTTP {page.status}.")
        if page.content_type.startswith(("text/", "application/json", "application/xhtml")):
            raise IngestError(
                f"{source.url} is a web page, not an audio or video file; add it as a web page instead."
            )
        return target
    if not source.file:
        raise IngestError("No file was uploaded.")
    size = 0
    try:
        with source.file.open("rb") as upload, target.open("wb") as sink:
            while part := upload.read(1024 * 1024):
                size += len(part)
                if size > limit:
                    raise IngestError(f"The recording is larger than {limit / 1e6:.0f} MB.")
                sink.write(part)
    except FileNotFoundError:
        raise IngestError("The uploaded file is missing; upload it again.") from None
    if not size:
        raise IngestError("The file is empty.")
    return target


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while part := handle.read(1024 * 1024):
            digest.update(part)
    return digest.hexdigest()


def source_transcribe(*, source: Source, progress: Progress) -> list[Block]:
    """The recording's transcript as blocks, one per timed segment (progress 1-40%).

    The transcript of the same recording by the same model is re-used (a re-sync or an edited title costs
    nothing); otherwise the audio is sent in parts and a ``Transcription`` records length and cost.
    """
    from knowledge import media
    from knowledge.transcription import NO_PROVIDER, provider_for, transcribe

    provider = provider_for(organization_id=source.organization_id)
    if provider is None:
        raise IngestError(NO_PROVIDER)
    link = source.url if source.kind == SourceKind.MEDIA_URL else ""
    with tempfile.TemporaryDirectory(prefix="parlor-media-") as folder:
        work = Path(folder)
        recording = _media_file(source, work)
        progress(3)
        digest = _sha256(recording)
        done = (
            Transcription.objects.filter(source=source, media_sha256=digest, model=provider.model)
            .order_by("-created_at")
            .first()
        )
        if done is None:
            info = media.probe(recording)
            media.check_limits(info)
            parts = media.extract_audio(recording, work)
            recording.unlink()  # only the parts are needed from here on
            progress(8)
            segments = []
            for number, part in enumerate(parts, start=1):
                found, _ = transcribe(provider, part.path)
                segments += [
                    {"start": round(s["start"] + part.start, 2), "end": round(s["end"] + part.start, 2),
                     "text": s["text"]}
                    for s in found
                ]  # fmt: skip
                progress(8 + int(30 * number / len(parts)))
            duration = info.duration or max((s["end"] for s in segments), default=0.0)
            cost = None
            if provider.usd_per_minute is not None:
                cost = (Decimal(str(duration)) / 60 * provider.usd_per_minute).quantize(Decimal("0.000001"))
            done = Transcription.objects.create(
                organization_id=source.organization_id, source=source, media_sha256=digest,
                provider=provider.host, model=provider.model, duration_seconds=round(duration, 2),
                cost_usd=cost, parts=len(parts), segments=segments,
            )  # fmt: skip
    Source.objects.filter(pk=source.pk).update(media_seconds=done.duration_seconds)
    if not done.segments:
        raise IngestError("No speech was recognised in the recording.")
    return [Block(text=s["text"], start=s["start"], url=link) for s in done.segments]


def transcription_base_url_problem(url: str) -> str:
    """Why ``url`` cannot be an organization's transcription endpoint ("" when it can): the early,
    readable answer; the client's transport checks every connection again."""
    from config import outbound

    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "Enter an http(s) URL such as https://api.openai.com/v1."
    try:
        outbound.check_url(url.strip(), allow_private=settings.LLM_ALLOW_PRIVATE_BASE_URLS)
    except outbound.OutboundRefused as exc:
        return f"This address is not allowed here: {exc}"
    return ""


def transcription_settings_set(
    *, organization, base_url: str, model: str, usd_per_minute: Decimal, api_key: str | None = None
) -> TranscriptionSettings:
    """Set an organization's transcription provider; ``api_key`` None keeps the stored key, "" clears it."""
    if problem := transcription_base_url_problem(base_url):
        raise TranscriptionSettingsError(problem)
    row = TranscriptionSettings.objects.filter(organization=organization).first() or TranscriptionSettings(
        organization=organization
    )
    row.base_url, row.model, row.usd_per_minute = base_url.strip(), model.strip(), usd_per_minute
    if api_key is not None:
        row.set_api_key(api_key)
    row.save()
    return row


def transcription_settings_rotate_encryption() -> int:
    """Re-encrypt every stored transcription key with the newest key (``rotate_encryption_keys``)."""
    from config import crypto

    changed = 0
    for row in TranscriptionSettings.objects.exclude(api_key_encrypted=""):
        row.api_key_encrypted = crypto.rotate(row.api_key_encrypted)
        row.save(update_fields=["api_key_encrypted", "updated_at"])
        changed += 1
    return changed


# --- changing the embedding model --------------------------------------------------------------


def embeddings_rebuild(*, model: str, batch_size: int = 64, log: Callable[[str], None] = logger.info) -> int:
    """Re-embed every chunk and FAQ question with ``model``, then switch the index over in one transaction.

    While vectors are computed into ``embedding_next`` the current vectors keep serving; chunks ingested
    meanwhile are picked up by the loop and by the final catch-up inside the switching transaction.
    Returns the number of chunks re-embedded.
    """
    embedder = get_embedder(model)
    Chunk.objects.exclude(embedding_next=None).update(  # restart cleanly
        embedding_next=None, sentence_embeddings_next=None
    )
    done = 0

    def embed_pending(limit: int | None) -> int:
        count = 0
        while True:
            rows = list(
                Chunk.objects.filter(embedding_next=None)
                .order_by("pk")
                .values_list("pk", "heading", "content", "tabular")[:batch_size]
            )
            if not rows:
                return count
            vectors = embed_chunks(embedder, [row[1:] for row in rows])
            Chunk.objects.bulk_update(
                [
                    Chunk(pk=pk, embedding_next=vector, sentence_embeddings_next=sentence_vectors)
                    for (pk, *_), (vector, sentence_vectors) in zip(rows, vectors, strict=True)
                ],
                ["embedding_next", "sentence_embeddings_next"],
            )
            count += len(rows)
            if count % (batch_size * 10) < batch_size:
                log(f"re-embedded {count} chunks")
            if limit is not None and count >= limit:
                return count

    done += embed_pending(None)
    with transaction.atomic():
        state = EmbeddingState.objects.select_for_update().order_by("pk").first()
        if state is None:
            state = EmbeddingState.objects.create(pk=1, active_model=model)
        done += embed_pending(None)  # chunks stored since the loop ended (ingestion now waits for us)
        Chunk.objects.update(
            embedding=F("embedding_next"), sentence_embeddings=F("sentence_embeddings_next"),
            embedding_model=model, embedding_next=None, sentence_embeddings_next=None,
        )  # fmt: skip
        pairs = list(FaqPair.objects.all())
        for start in range(0, len(pairs), batch_size):
            part = pairs[start : start + batch_size]
            for pair, vector in zip(part, embedder.embed_passages([p.question for p in part]), strict=True):
                pair.embedding, pair.embedding_model = vector, model
        FaqPair.objects.bulk_update(pairs, ["embedding", "embedding_model"], batch_size=500)
        state.active_model = model
        state.save(update_fields=["active_model", "updated_at"])
        knowledge_versions_bump_all()
    forget_serving_model()
    log(f"index switched to {model}: {done} chunks, {len(pairs)} FAQ questions")
    return done
