from __future__ import annotations

import re
from decimal import Decimal

from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.search import SearchVectorField
from django.db import models
from pgvector.django import HalfVectorField, HnswIndex, VectorField

from config import crypto

EMBEDDING_DIMENSIONS = 384


class HalfVectorArrayField(ArrayField):
    """``halfvec(n)[]``, read as a list of lists of floats: the driver has no loader for pgvector's types,
    so the array arrives as its text form."""

    def _from_db_value(self, value, expression, connection):
        if isinstance(value, str):
            return [[float(x) for x in body.split(",")] for body in _HALFVEC_BODY.findall(value)]
        return super()._from_db_value(value, expression, connection)


_HALFVEC_BODY = re.compile(r"\[([^\]]*)\]")


class SourceKind(models.TextChoices):
    FILE = "file", "Uploaded file"
    URL = "url", "Single web page"
    WEBSITE = "website", "Website (sitemap or crawl)"
    TEXT = "text", "Text"
    FAQ = "faq", "FAQ pairs"
    AUDIO = "audio", "Audio recording"
    VIDEO = "video", "Video recording"
    MEDIA_URL = "media_url", "Audio or video URL"


REMOTE_KINDS = (SourceKind.URL, SourceKind.WEBSITE)  # fetched from the web, re-synced on a schedule
MEDIA_KINDS = (SourceKind.AUDIO, SourceKind.VIDEO, SourceKind.MEDIA_URL)  # transcribed (knowledge/media.py)
UPLOAD_KINDS = (SourceKind.FILE, SourceKind.AUDIO, SourceKind.VIDEO)


class SourceStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    PROCESSING = "processing", "Processing"
    READY = "ready", "Ready"
    FAILED = "failed", "Failed"


def source_upload_to(instance: Source, filename: str) -> str:
    return f"knowledge/{instance.organization_id}/{filename}"


class Source(models.Model):
    """Something a bot knows: a file, a web page or site, raw text or FAQ pairs, with its ingest status."""

    organization = models.ForeignKey("accounts.Organization", on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(max_length=16, choices=SourceKind.choices)
    title = models.CharField(max_length=255)
    file = models.FileField(upload_to=source_upload_to, blank=True, max_length=500)
    url = models.URLField(blank=True, max_length=2000, help_text="Page URL, or the website's start URL.")
    text = models.TextField(blank=True, help_text="For text sources: the content itself.")
    max_pages = models.PositiveIntegerField(
        default=50, help_text="Website crawls stop after this many pages."
    )
    max_depth = models.PositiveSmallIntegerField(
        default=3, help_text="Website crawls follow links this deep."
    )
    resync_hours = models.PositiveIntegerField(
        default=0, help_text="Re-fetch URL and website sources every N hours (0: only by hand)."
    )

    status = models.CharField(max_length=16, choices=SourceStatus.choices, default=SourceStatus.QUEUED)
    progress = models.PositiveSmallIntegerField(default=0, help_text="Percent done while processing.")
    status_reason = models.TextField(blank=True)
    chunk_count = models.PositiveIntegerField(default=0)
    token_count = models.PositiveIntegerField(default=0)
    page_count = models.PositiveIntegerField(default=0)
    media_seconds = models.FloatField(
        null=True, blank=True, editable=False, help_text="Length of an audio or video recording."
    )
    synced_at = models.DateTimeField(null=True, blank=True)
    # Healing (knowledge.services.sources_heal): while queued or processing, when the beat job queues the
    # source again unless a worker claimed it (queued) or showed a sign of life (processing) by then; none
    # means at once. A broker message lost with Redis or a worker killed mid-way costs minutes, not forever.
    requeue_at = models.DateTimeField(null=True, blank=True, editable=False)
    # How often the healing job had to restart this ingestion since it was last requested; after
    # KNOWLEDGE_INGEST_MAX_RESTARTS the source is failed with a reason instead of restarted forever.
    ingest_restarts = models.PositiveSmallIntegerField(default=0, editable=False)
    # The PostgreSQL text search configuration of its chunks' full-text vectors: the language its text is
    # written in, told at each ingest (knowledge.questions.text_language) unless KNOWLEDGE_FTS_CONFIG names
    # one. Questions are stemmed with each configuration among a bot's sources; a rewrite of a question in
    # another language is written in the most common one (chatbots.llm.rewrite).
    text_search_config = models.CharField(
        "full-text language", max_length=32, default="english", editable=False,
        help_text="Told from the text at each ingest; words are stemmed and stop words dropped in this language.",
    )  # fmt: skip
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["organization", "status"], name="source_org_status"),
            # The healing job's scan: only the few sources still waiting or in work are indexed.
            models.Index(
                fields=["requeue_at"],
                name="source_pending_requeue",
                condition=models.Q(status__in=["queued", "processing"]),
            ),
        ]

    def __str__(self) -> str:
        return self.title

    @property
    def is_remote(self) -> bool:
        return self.kind in REMOTE_KINDS

    @property
    def is_media(self) -> bool:
        return self.kind in MEDIA_KINDS


class FaqPair(models.Model):
    """A question with its canonical answer; a close enough visitor question is answered directly."""

    organization = models.ForeignKey("accounts.Organization", on_delete=models.CASCADE, related_name="+")
    source = models.ForeignKey(Source, on_delete=models.CASCADE, related_name="faq_pairs")
    question = models.CharField(max_length=1000)
    answer = models.TextField()
    embedding = VectorField(dimensions=EMBEDDING_DIMENSIONS, null=True, blank=True, editable=False)
    embedding_model = models.CharField(max_length=100, blank=True, editable=False)
    # Where the pair came from when it corrects a bot's answer ("improve this answer" in the inbox): the
    # chat message and its conversation, as plain ids (knowledge knows no conversations).
    origin_message_id = models.BigIntegerField(null=True, blank=True, editable=False)
    origin_conversation_id = models.UUIDField(null=True, blank=True, editable=False)
    answered_count = models.PositiveIntegerField(
        default=0, editable=False, help_text="How often the bot has answered with this pair."
    )
    last_answered_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["pk"]
        verbose_name = "FAQ pair"
        indexes = [models.Index(fields=["origin_message_id"], name="faq_pair_origin_message")]

    def __str__(self) -> str:
        return self.question[:80]


class Chunk(models.Model):
    """A passage of a knowledge source with its embedding (pgvector) and full-text vector."""

    organization = models.ForeignKey("accounts.Organization", on_delete=models.CASCADE, related_name="+")
    source = models.ForeignKey(Source, on_delete=models.CASCADE, related_name="chunks", null=True)
    ordinal = models.PositiveIntegerField(default=0)
    content = models.TextField()
    heading = models.CharField(max_length=500, blank=True)
    page = models.PositiveIntegerField(null=True, blank=True)
    # Where the passage starts in an audio or video recording (seconds): cited as mm:ss, linked as #t=.
    start_seconds = models.FloatField(null=True, blank=True)
    url = models.CharField(max_length=2000, blank=True)
    content_hash = models.CharField(max_length=64, blank=True, db_index=True)
    token_count = models.PositiveIntegerField(default=0)
    embedding = VectorField(dimensions=EMBEDDING_DIMENSIONS, null=True)
    # One vector per sentence (``passage_sentences``), half precision: retrieval scores a chunk by its best
    # sentence too. Empty for a chunk of one sentence.
    sentence_embeddings = HalfVectorArrayField(
        HalfVectorField(dimensions=EMBEDDING_DIMENSIONS), default=list, blank=True
    )
    # Made of table rows only (a CSV, a spreadsheet-like table): rows are records that the chunk's vector and
    # full-text search match well, and a vector per row would make large tables ~2.5x slower to ingest.
    tabular = models.BooleanField(default=False)
    embedding_model = models.CharField(max_length=100, blank=True)
    # Filled by `manage.py knowledge_reembed` while the current embedding keeps serving, then swapped in.
    embedding_next = VectorField(dimensions=EMBEDDING_DIMENSIONS, null=True)
    sentence_embeddings_next = HalfVectorArrayField(
        HalfVectorField(dimensions=EMBEDDING_DIMENSIONS), null=True
    )
    search_vector = SearchVectorField(null=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [
            HnswIndex(
                name="chunk_embedding_hnsw",
                fields=["embedding"],
                m=16,
                ef_construction=64,
                opclasses=["vector_cosine_ops"],
            ),
            GinIndex(fields=["search_vector"], name="chunk_search_gin"),
            models.Index(fields=["organization", "source"], name="chunk_org_source"),
        ]

    def __str__(self) -> str:
        return self.content[:60]


class EmbeddingState(models.Model):
    """One row: which embedding model produced the vectors the index serves (queries must match it)."""

    active_model = models.CharField(max_length=100)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return self.active_model


class ChunkTerm(models.Model):
    """One lexeme of one chunk with its term frequency: the postings list BM25 ranks from.

    Written only by a database trigger on ``knowledge_chunk`` (migration 0005) from the chunk's
    ``search_vector``, so every way of storing chunks keeps it in step. Ranking from postings reads a few
    narrow index entries per matching chunk instead of unpacking each candidate's whole tsvector
    (measured: 40 ms → ~2 ms for a SciFact question over 8.6k chunks).
    """

    # Deleting chunks deletes their postings by trigger (migration 0005), so Django deletes chunks in one
    # statement instead of loading every chunk to collect its postings.
    chunk = models.ForeignKey(
        Chunk, on_delete=models.DO_NOTHING, related_name="+", db_index=False, db_constraint=False
    )
    organization_id = models.BigIntegerField()
    source_id = models.BigIntegerField(null=True)
    lexeme = models.TextField()
    term_frequency = models.FloatField()  # occurrences; heading (weight A) occurrences count twice
    chunk_length = models.FloatField()  # distinct lexemes in the chunk (BM25's document length)

    class Meta:
        indexes = [
            models.Index(
                fields=["lexeme", "organization_id", "source_id"],
                include=["chunk", "term_frequency", "chunk_length"],
                name="chunkterm_postings",
            ),
            models.Index(fields=["chunk"], name="chunkterm_chunk"),
        ]

    def __str__(self) -> str:
        return f"{self.lexeme} × {self.term_frequency:g} in chunk {self.chunk_id}"


class TranscriptionSettings(models.Model):
    """An organization's own speech-to-text provider (any OpenAI-compatible ``/audio/transcriptions``),
    used instead of the deployment's ``TRANSCRIPTION_*`` settings. The key is encrypted like bots' keys."""

    organization = models.OneToOneField(
        "accounts.Organization", on_delete=models.CASCADE, related_name="transcription_settings"
    )
    base_url = models.URLField(
        max_length=500, help_text="OpenAI-compatible API base, e.g. https://api.openai.com/v1."
    )
    model = models.CharField(max_length=100, default="whisper-1")
    api_key_encrypted = models.TextField(blank=True, default="", editable=False)
    usd_per_minute = models.DecimalField(
        max_digits=8, decimal_places=5, default=Decimal("0.006"),
        help_text="Price per minute of audio, recorded as each transcription's cost.",
    )  # fmt: skip
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "transcription provider"

    def __str__(self) -> str:
        return f"{self.model} at {self.base_url}"

    def set_api_key(self, raw: str) -> None:
        self.api_key_encrypted = crypto.encrypt(raw.strip())

    def get_api_key(self) -> str:
        return crypto.decrypt(self.api_key_encrypted)


class Transcription(models.Model):
    """One transcription of a recording: its timed segments (the transcript), length and cost.

    A row per provider call, so costs add up over time (analytics reads them); re-ingesting the same
    recording with the same model re-uses the latest transcript instead of paying again.
    """

    organization = models.ForeignKey("accounts.Organization", on_delete=models.CASCADE, related_name="+")
    source = models.ForeignKey(Source, on_delete=models.CASCADE, related_name="transcriptions")
    media_sha256 = models.CharField(max_length=64, db_index=True)
    provider = models.CharField(max_length=255, help_text="The endpoint's host.")
    model = models.CharField(max_length=100)
    duration_seconds = models.FloatField()
    cost_usd = models.DecimalField(max_digits=12, decimal_places=6, null=True, blank=True)
    parts = models.PositiveIntegerField(default=1, help_text="Requests the recording was sent in.")
    # [{"start": s, "end": s, "text": "..."}], times from the start of the recording.
    segments = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["organization", "created_at"], name="transcription_org_created")]

    def __str__(self) -> str:
        return f"{self.source_id}: {self.duration_seconds:.0f} s"

    @property
    def transcript(self) -> str:
        """The transcript as text, a line per segment starting with its time."""
        return "\n".join(f"[{timestamp(s['start'])}] {s['text']}" for s in self.segments)


def timestamp(seconds: float) -> str:
    """``mm:ss`` (``h:mm:ss`` from an hour on): how a moment of a recording is shown and cited."""
    total = max(0, int(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"
