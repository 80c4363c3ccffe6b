from __future__ import annotations

import hashlib
import secrets
import uuid

from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.search import SearchVectorField
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.db.models import Q
from pgvector.django import VectorField

from chatbots import crypto
from chatbots.llm.presets import Provider
from knowledge.models import EMBEDDING_DIMENSIONS


def new_public_id() -> str:
    """Unguessable id that the widget and public URLs use instead of the primary key."""
    return "bot_" + secrets.token_urlsafe(16)


def default_suggested_questions() -> list[str]:
    return []


class BotStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    PAUSED = "paused", "Paused"


class AnswerStyle(models.TextChoices):
    STRICT = "strict", "Only from the knowledge"
    MIXED = "mixed", "Knowledge first, general knowledge allowed"


class WidgetPosition(models.TextChoices):
    BOTTOM_RIGHT = "bottom-right", "Bottom right"
    BOTTOM_LEFT = "bottom-left", "Bottom left"


class WidgetTheme(models.TextChoices):
    AUTO = "auto", "Follow the visitor's system"
    PAGE = "page", "Follow the website's background"
    LIGHT = "light", "Light"
    DARK = "dark", "Dark"


class Language(models.TextChoices):
    AUTO = "auto", "The visitor's language"
    EN = "en", "English"
    DE = "de", "German"
    FR = "fr", "French"
    ES = "es", "Spanish"
    IT = "it", "Italian"
    NL = "nl", "Dutch"
    PT = "pt", "Portuguese"
    PL = "pl", "Polish"


class SystemMessages(models.TextChoices):
    """What the OpenAI-compatible API does with a client's own system message."""

    APPEND = "append", "Append them to the bot's instructions"
    REFUSE = "refuse", "Refuse requests that carry one"


hex_color = RegexValidator(r"^#[0-9a-fA-F]{6}$", "Use a colour like #4f46e5.")


class LeadCapture(models.TextChoices):
    """When the widget asks a visitor for their name and e-mail address (chatbots.leads)."""

    OFF = "off", "Off"
    BEFORE = "before", "Before chatting"
    AFTER = "after", "After some messages"


class Bot(models.Model):
    organization = models.ForeignKey("accounts.Organization", on_delete=models.CASCADE, related_name="bots")
    name = models.CharField(max_length=120)
    public_id = models.CharField(max_length=40, unique=True, default=new_public_id, editable=False)
    status = models.CharField(max_length=10, choices=BotStatus.choices, default=BotStatus.ACTIVE)

    # --- conversation ---
    system_prompt = models.TextField(
        blank=True, default="You are a helpful assistant. Answer from the provided knowledge."
    )
    greeting = models.CharField(max_length=500, blank=True, default="Hi! How can I help you today?")
    suggested_questions = models.JSONField(
        default=default_suggested_questions,
        blank=True,
        help_text="Up to a few short questions visitors can click.",
    )
    answer_style = models.CharField(max_length=10, choices=AnswerStyle.choices, default=AnswerStyle.STRICT)
    fallback_reply = models.CharField(
        max_length=500,
        blank=True,
        default="Sorry, I don't know that yet. Please contact us directly and we'll be happy to help.",
        help_text="What the bot says when its knowledge has no answer.",
    )
    language = models.CharField(max_length=8, choices=Language.choices, default=Language.AUTO)
    history_turns = models.PositiveSmallIntegerField(
        default=6,
        validators=[MaxValueValidator(50)],
        help_text="Earlier question/answer pairs sent to the model.",
    )

    api_system_messages = models.CharField(
        max_length=8,
        choices=SystemMessages.choices,
        default=SystemMessages.APPEND,
        db_default=SystemMessages.APPEND,  # rows inserted by code that predates the field (a rolling deploy)
        help_text="System messages sent by OpenAI-compatible API clients: appended after the bot's system "
        "prompt, or refused with an error.",
    )

    # --- retrieval ---
    retrieval_top_k = models.PositiveSmallIntegerField(
        default=6, validators=[MinValueValidator(1), MaxValueValidator(50)]
    )
    retrieval_min_score = models.FloatField(
        null=True,
        blank=True,
        validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
        help_text="Passages less relevant than this (0–1) are not used; when none is left, the bot says its "
        "knowledge does not cover the question. Empty: the threshold measured for the embedding model.",
    )
    query_rewrite = models.BooleanField(
        default=True,
        help_text="With a language model, a follow-up that does not name its topic (“and for how long?”) is "
        "first rewritten by the model into a question that stands on its own, and that is searched. A short "
        "extra call; on a timeout or an error, and for offline bots, the follow-up is searched with the "
        "conversation instead.",
    )

    # --- answer cache (chatbots.answer_cache) ---
    answer_cache_enabled = models.BooleanField(
        default=True,
        help_text="Answer a first question asked before, with unchanged settings and knowledge, from the cache "
        "instead of calling the model again.",
    )
    answer_cache_ttl_seconds = models.PositiveIntegerField(
        default=86400,
        validators=[MinValueValidator(60), MaxValueValidator(30 * 86400)],
        help_text="How long a cached answer is reused (seconds).",
    )

    # --- language model ---
    provider = models.CharField(max_length=16, choices=Provider.choices, default=Provider.DEFAULT)
    base_url = models.URLField(
        max_length=300,
        blank=True,
        help_text="Leave empty to use the preset's endpoint; required for Azure/custom.",
    )
    model = models.CharField(
        max_length=200, blank=True, help_text="Leave empty for the preset's default model."
    )
    temperature = models.FloatField(default=0.2, validators=[MinValueValidator(0.0), MaxValueValidator(2.0)])
    max_output_tokens = models.PositiveIntegerField(
        default=800, validators=[MinValueValidator(16), MaxValueValidator(32000)]
    )
    api_key_encrypted = models.TextField(blank=True, default="", editable=False)
    fallback_provider = models.CharField(
        max_length=16,
        choices=Provider.choices,
        blank=True,
        default="",
        help_text="Empty: the same provider as above (set a fallback model to use one).",
    )
    fallback_base_url = models.URLField(max_length=300, blank=True)
    fallback_model = models.CharField(max_length=200, blank=True)
    fallback_api_key_encrypted = models.TextField(blank=True, default="", editable=False)

    # --- website widget ---
    allowed_origins = models.JSONField(
        default=list, blank=True, help_text='Websites that may embed the bot, e.g. "https://www.example.com".'
    )
    widget_title = models.CharField(max_length=80, blank=True, default="")
    widget_primary_color = models.CharField(max_length=7, default="#4f46e5", validators=[hex_color])
    widget_position = models.CharField(
        max_length=12, choices=WidgetPosition.choices, default=WidgetPosition.BOTTOM_RIGHT
    )
    widget_launcher_text = models.CharField(max_length=40, blank=True, default="Chat with us")
    widget_avatar_url = models.URLField(max_length=500, blank=True)
    widget_theme = models.CharField(max_length=5, choices=WidgetTheme.choices, default=WidgetTheme.AUTO)

    # --- leads and identified visitors (chatbots.leads, chatbots.identity) ---
    lead_capture = models.CharField(
        "ask for name and e-mail",
        max_length=8,
        choices=LeadCapture.choices,
        default=LeadCapture.OFF,
        db_default=LeadCapture.OFF,
        help_text="The widget shows a short form (name, e-mail, consent) before the first message, or after "
        "some messages. Given details are stored as a lead and shown in the inbox.",
    )
    lead_capture_after = models.PositiveSmallIntegerField(
        "ask after (visitor messages)",
        default=3,
        db_default=3,
        validators=[MinValueValidator(1), MaxValueValidator(50)],
        help_text="With “After some messages”: the form appears once the visitor sent this many messages.",
    )
    lead_capture_required = models.BooleanField(
        "form is required",
        default=False,
        db_default=False,
        help_text="Off: the visitor may skip the form and chat anyway. On: chatting starts after the form.",
    )
    lead_consent_text = models.TextField(
        "consent text",
        blank=True,
        default="",
        max_length=600,
        help_text="Shown beside the consent checkbox. Empty: a default text in the visitor's language.",
    )
    identity_secret_encrypted = models.TextField(blank=True, default="", editable=False)
    identity_required = models.BooleanField(
        "require signed identity",
        default=False,
        db_default=False,
        help_text="Refuse Parlor.identify() calls without a valid user_hash, and ignore names and e-mail "
        "addresses that the page passes without one.",
    )

    sources = models.ManyToManyField(
        "knowledge.Source",
        blank=True,
        related_name="bots",
        help_text="The knowledge this bot answers from. A source can serve several bots.",
    )
    # --- human handoff (chatbots.handoff) ---
    handoff_enabled = models.BooleanField(
        default=False,
        help_text="Visitors may ask for a person: a button in the chat's header, or asking in words "
        "(“talk to a person”). Members of the organization answer from the inbox.",
    )
    handoff_after_fallback = models.BooleanField(
        default=False,
        help_text="Hand the conversation to a person when the bot gives its fallback reply (its knowledge "
        "has no answer).",
    )
    handoff_after_thumbs_down = models.BooleanField(
        default=False, help_text="Hand the conversation to a person when the visitor rates an answer down."
    )
    retention_days = models.PositiveIntegerField(
        "keep conversations (days)",
        null=True,
        blank=True,
        help_text="Conversations whose last message is older than this are deleted. Empty: the "
        "organization's setting (which is to keep them forever unless set).",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    # Keys are write-only: they go in through these setters and come out only to call the provider.
    def set_api_key(self, raw: str) -> None:
        self.api_key_encrypted = crypto.encrypt(raw.strip())

    def get_api_key(self) -> str:
        return crypto.decrypt(self.api_key_encrypted)

    def set_fallback_api_key(self, raw: str) -> None:
        self.fallback_api_key_encrypted = crypto.encrypt(raw.strip())

    def get_fallback_api_key(self) -> str:
        return crypto.decrypt(self.fallback_api_key_encrypted)

    def set_identity_secret(self, raw: str) -> None:
        self.identity_secret_encrypted = crypto.encrypt(raw)

    def get_identity_secret(self) -> str:
        return crypto.decrypt(self.identity_secret_encrypted) if self.identity_secret_encrypted else ""

    @property
    def has_api_key(self) -> bool:
        return bool(self.api_key_encrypted)

    @property
    def has_fallback_api_key(self) -> bool:
        return bool(self.fallback_api_key_encrypted)

    @property
    def is_active(self) -> bool:
        return self.status == BotStatus.ACTIVE

    @property
    def display_title(self) -> str:
        return self.widget_title or self.name


class Channel(models.TextChoices):
    WIDGET = "widget", "Widget / chat page"
    API = "api", "REST API"
    OPENAI = "openai", "OpenAI-compatible API"


# Keys of ``Conversation.visitor_attributes`` that name the visitor, in order of preference.
VISITOR_NAME_KEYS = ("name", "full_name", "email", "e-mail")

# The full-text configuration of message search. "simple" (lower-cased words, no stemming, no stop words)
# rather than "english": visitors write in any language, and a stemmer for one language mangles the others.
MESSAGE_SEARCH_CONFIG = "simple"


class HandoffStatus(models.TextChoices):
    NONE = "", "With the bot"
    WAITING = "waiting", "Waiting for a person"
    TAKEN = "taken", "With a person"
    CLOSED = "closed", "Closed by a person"


# While a conversation is in one of these, the bot does not answer: a person does.
HANDOFF_ACTIVE = (HandoffStatus.WAITING, HandoffStatus.TAKEN)


class ConversationManager(models.Manager):
    """Conversations without their search document: only the database reads it (the inbox search), and
    a long conversation's document is as big as its text (exports, the inbox and retention would each
    fetch and parse it for nothing)."""

    def get_queryset(self) -> models.QuerySet:
        return super().get_queryset().defer("search_document")


class Conversation(models.Model):
    """A visitor's (or API client's) thread with one bot; resumable by its unguessable id."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey("accounts.Organization", on_delete=models.CASCADE, related_name="+")
    bot = models.ForeignKey(Bot, on_delete=models.CASCADE, related_name="conversations")
    channel = models.CharField(max_length=10, choices=Channel.choices, default=Channel.WIDGET)
    visitor_id = models.CharField(max_length=64, blank=True, db_index=True)
    visitor_attributes = models.JSONField(default=dict, blank=True)
    # The visitor's language as a primary subtag ("de", "en"; "" when unknown): what the visitor's browser
    # (widget) or the caller's Accept-Language named when the conversation started. The inbox filters by it.
    language = models.CharField(max_length=8, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    last_message_at = models.DateTimeField(auto_now_add=True, db_index=True)
    # What the inbox shows and filters by, summarized from the conversation's messages when they are stored
    # (chatbots.conversation_summary keeps them equal to the messages; erasure and retention included), so
    # a page reads one row per conversation instead of subqueries over its messages.
    # (Database defaults too: bulk loaders that COPY conversations, then rebuild the summary, leave them out.)
    first_question = models.CharField(max_length=140, blank=True, default="", db_default="", editable=False)
    message_count = models.PositiveIntegerField("messages", default=0, db_default=0, editable=False)
    has_thumbs_down = models.BooleanField(default=False, db_default=False, editable=False)
    # the bot's fallback reply, or a complete answer without any source
    has_unanswered = models.BooleanField(default=False, db_default=False, editable=False)
    # a failed or incomplete message
    has_failure = models.BooleanField(default=False, db_default=False, editable=False)
    # Full-text document of every message of the conversation (MESSAGE_SEARCH_CONFIG): the inbox search.
    search_document = SearchVectorField(null=True, editable=False)

    # Human handoff (chatbots.handoff): who answers, since when. Changed only by the handoff services.
    handoff_status = models.CharField(
        max_length=8, choices=HandoffStatus.choices, blank=True, default="", db_default=""
    )
    handoff_reason = models.CharField(max_length=20, blank=True, default="", db_default="")
    handoff_operator = models.ForeignKey(
        "accounts.User", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    handoff_requested_at = models.DateTimeField(null=True, blank=True)
    handoff_taken_at = models.DateTimeField(null=True, blank=True)
    handoff_ended_at = models.DateTimeField(null=True, blank=True)

    objects = ConversationManager()

    class Meta:
        ordering = ["-last_message_at"]
        indexes = [
            models.Index(fields=["bot", "-last_message_at"], name="conversation_bot_recent"),
            # analytics: a day's conversations (roll-up, stale-day check) without a scan of them all
            models.Index(fields=["created_at"], name="conversation_created"),
            # the inbox's bot filter lists the bots that have conversations: an index-only scan
            models.Index(fields=["organization", "bot"], name="conversation_organization_bot"),
            # the inbox: an organization's conversations, newest activity first (a page and its count)
            models.Index(fields=["organization", "-last_message_at"], name="conversation_org_recent"),
            # the inbox's language filter lists an organization's languages from the index alone
            models.Index(fields=["organization", "language"], name="conversation_org_language"),
            # the inbox's channel filter: one organization's conversations of a channel, newest first, and
            # their bounded count, from the index alone
            models.Index(
                fields=["organization", "channel", "-last_message_at"], name="conversation_org_channel"
            ),
            # The inbox's thumbs-down, unanswered and failed filters: the organization's flagged conversations,
            # newest activity first (a page is the first 50 entries; the count reads only flagged ones).
            models.Index(
                fields=["organization", "-last_message_at"],
                name="conversation_org_thumbs_down",
                condition=Q(has_thumbs_down=True),
            ),
            models.Index(
                fields=["organization", "-last_message_at"],
                name="conversation_org_unanswered",
                condition=Q(has_unanswered=True),
            ),
            models.Index(
                fields=["organization", "-last_message_at"],
                name="conversation_org_failure",
                condition=Q(has_failure=True),
            ),
            # The inbox search: a word is looked up in one organization's conversations (btree_gin).
            GinIndex(fields=["organization", "search_document"], name="conversation_search"),
            # the inbox's "handed over" badge and filter: the few conversations that ever were
            models.Index(
                fields=["organization", "handoff_status"],
                name="conversation_org_handoff",
                condition=Q(handoff_requested_at__isnull=False),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.bot} · {self.created_at:%Y-%m-%d %H:%M}"

    @property
    def visitor_label(self) -> str:
        """Who the visitor is, for people reading the inbox: the name or e-mail address the site passed in
        ``visitor_attributes`` when it identified the visitor, otherwise a short anonymous label derived
        from the visitor id (stable across the visitor's conversations, never the id itself)."""
        attributes = self.visitor_attributes if isinstance(self.visitor_attributes, dict) else {}
        for key in VISITOR_NAME_KEYS:
            value = attributes.get(key)
            if isinstance(value, str) and value.strip():
                return value.strip()[:120]
        seed = self.visitor_id or str(self.pk)
        return "Visitor " + hashlib.sha256(seed.encode()).hexdigest()[:4]


class MessageRole(models.TextChoices):
    USER = "user", "User"
    ASSISTANT = "assistant", "Assistant"
    OPERATOR = "operator", "Operator (a person)"


class MessageStatus(models.TextChoices):
    COMPLETE = "complete", "Complete"
    STREAMING = "streaming", "Streaming"
    INCOMPLETE = "incomplete", "Incomplete (stream interrupted)"
    FAILED = "failed", "Failed"


class Feedback(models.TextChoices):
    NONE = "", "None"
    UP = "up", "Thumbs up"
    DOWN = "down", "Thumbs down"


class Message(models.Model):
    """One turn; assistant turns carry their sources, usage, cost and timings."""

    organization = models.ForeignKey("accounts.Organization", on_delete=models.CASCADE, related_name="+")
    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="messages")
    role = models.CharField(max_length=10, choices=MessageRole.choices)
    # An operator's reply (role "operator"): the person who wrote it; kept as text when they leave.
    operator = models.ForeignKey(
        "accounts.User", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    operator_name = models.CharField(max_length=150, blank=True, default="", db_default="")
    text = models.TextField(blank=True)
    status = models.CharField(max_length=10, choices=MessageStatus.choices, default=MessageStatus.COMPLETE)
    error_code = models.CharField(max_length=40, blank=True)
    sources = models.JSONField(default=list, blank=True)
    answered_from_faq = models.BooleanField(default=False)
    answered_from_cache = models.BooleanField(default=False)
    model = models.CharField(max_length=120, blank=True)
    provider = models.CharField(max_length=40, blank=True)
    offline = models.BooleanField(default=False)
    prompt_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)
    cost_usd = models.DecimalField(max_digits=12, decimal_places=6, null=True, blank=True)
    latency_ms = models.PositiveIntegerField(null=True, blank=True)
    first_token_ms = models.PositiveIntegerField(null=True, blank=True)
    feedback = models.CharField(max_length=4, choices=Feedback.choices, blank=True, default="")
    # What retrieval searched for this answer (the question, the conversation's words with it, or the
    # model's standalone rewrite), shown in the transcript.
    search_query = models.TextField(blank=True, default="")
    search_rewritten = models.BooleanField(default=False)
    feedback_comment = models.TextField(blank=True)
    feedback_at = models.DateTimeField(null=True, blank=True)
    # A visitor's question: the vector retrieval computed for it (no second embedder call), so the review
    # queue and the dashboard can group similar questions. Null for answers and older messages.
    question_embedding = VectorField(dimensions=EMBEDDING_DIMENSIONS, null=True, blank=True, editable=False)
    # An answer from the knowledge: the relevance (0–1) of its best passage; low means a weak answer.
    retrieval_score = models.FloatField(null=True, blank=True)
    # An answer in the review queue: when someone marked it resolved (or improved it).
    reviewed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [
            models.Index(fields=["conversation", "created_at"], name="message_conversation_time"),
            # analytics: a day's messages (roll-up, stale-day check) without a scan of them all
            models.Index(fields=["created_at"], name="message_created"),
            # The inbox's badges and filters (chatbots.selectors): small partial indexes of the few messages
            # that earn a badge; without them each page scanned every message (bench/analytics_scale.py).
            # Keyed by organization first: a filter reads only its organization's part (chatbots.selectors).
            models.Index(
                fields=["organization", "conversation", "feedback"],
                name="message_rated",
                condition=Q(feedback__in=["up", "down"]),
            ),
            models.Index(
                fields=["organization", "conversation"],
                name="message_problem",
                condition=Q(status__in=["failed", "incomplete"]),
            ),
            models.Index(
                fields=["organization", "conversation"],
                name="message_unanswered",
                condition=Q(role="assistant", status="complete")
                & (Q(provider="fallback_reply") | Q(sources=[])),
            ),
            # The dashboard's "could not answer" panel: an organization's newest unanswered answers in order.
            models.Index(
                fields=["organization", "-created_at"],
                name="message_unanswered_recent",
                condition=Q(role="assistant", status="complete")
                & (Q(provider="fallback_reply") | Q(sources=[])),
            ),
            # The review queue reads an organization's newest unresolved answers: only those are indexed.
            models.Index(
                fields=["organization", "-created_at"],
                name="message_review_open",
                condition=models.Q(role="assistant", reviewed_at__isnull=True),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.role}: {self.text[:60]}"


class ApiKeyBotLimit(models.Model):
    """Limits an API key to some bots of its organization.

    A key without a limit may use every bot of its organization; a limited key only ``bots`` — also when
    they have all been deleted since (then none: deleting a bot never widens a key). Accounts knows no
    bots, so the limit lives here. Only ``chatbots.selectors`` reads it (``bots_for_api_key``: "which bots
    may this key use", for every surface) and ``chatbots.services.api_key_set_bots`` writes it.
    """

    organization = models.ForeignKey("accounts.Organization", on_delete=models.CASCADE, related_name="+")
    api_key = models.OneToOneField("accounts.ApiKey", on_delete=models.CASCADE, related_name="bot_limit")
    bots = models.ManyToManyField(Bot, blank=True, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = "API key bot limit"

    def __str__(self) -> str:
        return f"{self.api_key} limited to bots"


class ExportFormat(models.TextChoices):
    CSV = "csv", "CSV (one row per message)"
    JSONL = "jsonl", "JSON Lines (one conversation per line)"


class ExportStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    READY = "ready", "Ready"
    FAILED = "failed", "Failed"


def export_upload_to(instance: ConversationExport, filename: str) -> str:
    """Exports live under their organization's folder: deleting an organization removes the folder."""
    return f"exports/{instance.organization_id}/{filename}"


class ConversationExport(models.Model):
    """A filtered set of conversations written to a file by a Celery job (chatbots.exports); downloadable
    until ``expires_at``, then the file is deleted."""

    organization = models.ForeignKey("accounts.Organization", on_delete=models.CASCADE, related_name="+")
    requested_by = models.ForeignKey(
        "accounts.User", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    format = models.CharField(max_length=8, choices=ExportFormat.choices, default=ExportFormat.CSV)
    filters = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=10, choices=ExportStatus.choices, default=ExportStatus.QUEUED)
    progress = models.PositiveSmallIntegerField(default=0)
    conversation_count = models.PositiveIntegerField(default=0)
    message_count = models.PositiveIntegerField(default=0)
    error = models.CharField(max_length=300, blank=True)
    file = models.FileField(upload_to=export_upload_to, blank=True, max_length=300)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True, db_index=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "conversation export"

    def __str__(self) -> str:
        return (
            f"Export {self.pk} ({self.get_format_display().split(' (')[0]}, {self.created_at:%Y-%m-%d %H:%M})"
        )


class ReviewQueueEntry(Message):
    """The review queue's admin page (answers that need attention, grouped by similar question): a proxy of
    ``Message`` so the page is a registered, tenant-scoped admin that the sidebar lists by itself."""

    class Meta:
        proxy = True
        verbose_name = "review queue"
        verbose_name_plural = "review queue"


class SubjectLookup(models.TextChoices):
    VISITOR_ID = "visitor_id", "Visitor id"
    EMAIL = "email", "E-mail address"
    CONVERSATION = "conversation", "Conversation id"


class SubjectRequestKind(models.TextChoices):
    EXPORT = "export", "Export"
    ERASE = "erase", "Erase"


class SubjectRequestStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


class DataSubjectRequest(models.Model):
    """A visitor's request to see (export) or delete (erase) what Parlor holds about them, done by a Celery
    job (chatbots.privacy). The record stays after an erasure, without the visitor: the identifier is kept
    encrypted only while the job needs it, then only its masked ``subject_hint`` and hashes remain."""

    organization = models.ForeignKey("accounts.Organization", on_delete=models.CASCADE, related_name="+")
    requested_by = models.ForeignKey(
        "accounts.User", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    requested_via = models.CharField(max_length=40, blank=True)  # "admin" or an API key's prefix
    kind = models.CharField(max_length=8, choices=SubjectRequestKind.choices)
    lookup = models.CharField(max_length=14, choices=SubjectLookup.choices)
    lookup_encrypted = models.TextField(blank=True, editable=False)  # cleared when the job is done
    subject_hint = models.CharField(max_length=40, blank=True)  # e.g. "j…@e…" — never the identifier
    # SHA-256 (keyed per organization) of each visitor id, e-mail and conversation id the request covered:
    # lets a later erasure find this request's export file without keeping the identifiers.
    subject_hashes = models.JSONField(default=list, blank=True, editable=False)
    status = models.CharField(
        max_length=8, choices=SubjectRequestStatus.choices, default=SubjectRequestStatus.QUEUED
    )
    progress = models.PositiveSmallIntegerField(default=0)
    conversation_count = models.PositiveIntegerField(default=0)
    message_count = models.PositiveIntegerField(default=0)
    error = models.CharField(max_length=300, blank=True)
    file = models.FileField(upload_to="subject-requests/%Y/%m/", blank=True, max_length=300)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)  # a running job's last sign of life
    finished_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True, db_index=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "data subject request"

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.get_lookup_display().lower()} {self.subject_hint}"


class LeadReason(models.TextChoices):
    BEFORE_CHAT = "before_chat", "Asked before chatting"
    AFTER_MESSAGES = "after_messages", "Asked after some messages"
    NOBODY_AVAILABLE = "nobody_available", "Nobody was available"
    VISITOR = "visitor", "Left by the visitor"


class LeadStatus(models.TextChoices):
    NEW = "new", "New"
    REPLIED = "replied", "Replied"


class Lead(models.Model):
    """A visitor's name and e-mail address left in the widget (a lead form), with the consent they gave,
    so the team can answer by e-mail (chatbots.leads). Kept without a conversation too: a lead left
    before chatting, or after its conversation was deleted by retention, is found by ``visitor_fields``."""

    # chatbots.privacy finds a visitor's leads by these (besides the conversation) for export and erasure.
    visitor_fields = ("visitor_id", "email")

    organization = models.ForeignKey("accounts.Organization", on_delete=models.CASCADE, related_name="+")
    bot = models.ForeignKey(Bot, on_delete=models.CASCADE, related_name="leads")
    conversation = models.ForeignKey(
        Conversation, on_delete=models.SET_NULL, null=True, blank=True, related_name="leads"
    )
    visitor_id = models.CharField(max_length=64, blank=True, db_index=True)
    name = models.CharField(max_length=120, blank=True)
    email = models.EmailField("e-mail address")
    message = models.TextField("question", blank=True)
    reason = models.CharField(max_length=16, choices=LeadReason.choices, default=LeadReason.VISITOR)
    language = models.CharField(max_length=8, blank=True, default="")
    consent_text = models.TextField(blank=True, help_text="The text the visitor agreed to, as shown.")
    consent_given = models.BooleanField(default=False)
    consent_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=8, choices=LeadStatus.choices, default=LeadStatus.NEW)
    created_at = models.DateTimeField(auto_now_add=True)
    replied_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["organization", "-created_at"], name="lead_org_recent"),
            models.Index(fields=["organization", "status"], name="lead_org_status"),
        ]

    def __str__(self) -> str:
        return (
            f"{self.name or self.email} · {self.created_at:%Y-%m-%d %H:%M}" if self.created_at else self.email
        )


class LeadReply(models.Model):
    """An operator's answer sent by e-mail from the inbox: to a lead, or to the identified visitor of a
    conversation (who gave an e-mail address). Kept as sent, with who sent it and when."""

    visitor_fields = ("to_email",)

    organization = models.ForeignKey("accounts.Organization", on_delete=models.CASCADE, related_name="+")
    bot = models.ForeignKey(Bot, on_delete=models.CASCADE, related_name="+")
    lead = models.ForeignKey(Lead, on_delete=models.CASCADE, null=True, blank=True, related_name="replies")
    conversation = models.ForeignKey(
        Conversation, on_delete=models.SET_NULL, null=True, blank=True, related_name="email_replies"
    )
    to_email = models.EmailField("to")
    subject = models.CharField(max_length=200)
    body = models.TextField()
    sent_by = models.ForeignKey(
        "accounts.User", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at", "id"]
        verbose_name = "e-mail reply"
        verbose_name_plural = "e-mail replies"

    def __str__(self) -> str:
        return f"Reply to {self.to_email}: {self.subject}"
