"""Writes of chatbots: bots (create, update with write-only provider keys, test the connection, rotate
encryption) and conversations (the visitor's messages, the answers, feedback)."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

from asgiref.sync import async_to_sync
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from accounts.exceptions import ApplicationError
from accounts.models import ApiKey, Organization
from chatbots import crypto, webhook_events
from chatbots.answer_cache import answer_cache_clear, answer_cache_invalidate
from chatbots.conversation_summary import (
    summary_failure_added,
    summary_feedback_changed,
    summary_message_added,
)
from chatbots.exceptions import InvalidMessage, MessageNotFound
from chatbots.handoff import HandoffReason, handoff_request
from chatbots.identity import new_identity_secret
from chatbots.llm import ConnectionReport, check_endpoint, endpoints_for
from chatbots.llm.endpoints import new_client
from chatbots.llm.events import Turn
from chatbots.llm.presets import PRESETS, Provider
from chatbots.models import ApiKeyBotLimit, Bot, Conversation, Feedback, Message, MessageRole, MessageStatus
from chatbots.origins import parse_allowed_origin, refused_origins_forget
from chatbots.question_groups import question_panels_forget
from chatbots.selectors import conversation_get_for_visitor, conversation_recent_turns
from config import outbound
from knowledge.models import FaqPair, Source, SourceKind
from knowledge.selectors import SourcePayload, faq_question_key
from knowledge.services import FaqOrigin, faq_pair_count_answer, source_create, source_update

# Fields a customer may set through the admin or the API (keys go through their own arguments).
BOT_EDITABLE_FIELDS = (
    "name", "status", "system_prompt", "greeting", "suggested_questions", "answer_style", "fallback_reply",
    "language", "history_turns", "api_system_messages", "retrieval_top_k", "retrieval_min_score", "query_rewrite",
    "answer_cache_enabled", "answer_cache_ttl_seconds", "provider", "base_url", "model", "temperature",
    "max_output_tokens", "fallback_provider", "fallback_base_url", "fallback_model",
    "allowed_origins", "widget_title", "widget_primary_color", "widget_position", "widget_launcher_text",
    "widget_avatar_url", "widget_theme", "lead_capture", "lead_capture_after", "lead_capture_required",
    "lead_consent_text", "identity_required",
)  # fmt: skip
MAX_SUGGESTED_QUESTIONS = 6


def _validate_base_url(field: str, url: str) -> None:
    if not url:
        return
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValidationError({field: "Enter an http(s) URL such as https://api.example.com/v1."})
    try:
        # A tenant must not make Parlor's servers call internal services (SSRF). This is the early,
        # readable answer; the provider client's transport checks every connection again.
        outbound.check_url(url, allow_private=settings.LLM_ALLOW_PRIVATE_BASE_URLS)
    except outbound.OutboundRefused as exc:
        raise ValidationError({field: f"This address is not allowed here: {exc}"}) from None


def _clean_allowed_origins(entries: list[Any]) -> list[str]:
    """Canonical, unique entries; an entry the widget could not use is refused (never silently dropped)."""
    cleaned = []
    for entry in entries:
        if not str(entry).strip():
            continue
        origin = parse_allowed_origin(str(entry))
        if origin is None:
            raise ValidationError(
                {
                    "allowed_origins": f"{str(entry).strip()!r} is not an origin like https://www.example.com "
                    "(scheme and host, an optional port and an optional leading *. for subdomains)."
                }
            )
        cleaned.append(origin)
    return list(dict.fromkeys(cleaned))


def bot_validate(bot: Bot) -> None:
    """Normalize list fields and check the rules that span fields, then the model's own validation."""
    questions = [str(q).strip() for q in (bot.suggested_questions or []) if str(q).strip()]
    if len(questions) > MAX_SUGGESTED_QUESTIONS:
        raise ValidationError({"suggested_questions": f"At most {MAX_SUGGESTED_QUESTIONS} questions."})
    bot.suggested_questions = questions
    if not isinstance(bot.allowed_origins, list):
        raise ValidationError({"allowed_origins": "A list of origins is expected."})
    bot.allowed_origins = _clean_allowed_origins(bot.allowed_origins)
    for provider_field, url_field in (("provider", "base_url"), ("fallback_provider", "fallback_base_url")):
        provider = getattr(bot, provider_field)
        _validate_base_url(url_field, getattr(bot, url_field))
        preset = PRESETS.get(provider)
        if preset is not None and not preset.base_url and not getattr(bot, url_field):
            example = f", e.g. {preset.url_hint}" if preset.url_hint else ""
            raise ValidationError({url_field: f"{Provider(provider).label} needs the endpoint URL{example}."})
    bot.full_clean()


def _apply_keys(bot: Bot, api_key: str | None, fallback_api_key: str | None) -> None:
    # None leaves a stored key untouched (forms never show it, so an empty field means "keep"); "" clears.
    if api_key is not None:
        bot.set_api_key(api_key)
    if fallback_api_key is not None:
        bot.set_fallback_api_key(fallback_api_key)
    if bot.identity_required and not bot.identity_secret_encrypted:
        # Requiring signed identities without a secret would refuse everyone: one is made at once.
        bot.set_identity_secret(new_identity_secret())


def _unknown_fields(data: Mapping[str, Any]) -> None:
    unknown = set(data) - set(BOT_EDITABLE_FIELDS)
    if unknown:
        raise ApplicationError(f"Unknown or read-only bot fields: {', '.join(sorted(unknown))}.")


@transaction.atomic
def bot_create(
    *,
    organization: Organization,
    name: str,
    api_key: str | None = None,
    fallback_api_key: str | None = None,
    **fields: Any,
) -> Bot:
    """A new bot with sensible defaults, ready to answer (offline unless a provider is configured)."""
    _unknown_fields(fields)
    bot = Bot(organization=organization, name=name, **fields)
    if not bot.widget_title:
        bot.widget_title = name
    _apply_keys(bot, api_key, fallback_api_key)
    bot_validate(bot)
    bot.save()
    return bot


@transaction.atomic
def bot_update(
    *,
    bot: Bot,
    data: Mapping[str, Any],
    api_key: str | None = None,
    fallback_api_key: str | None = None,
) -> Bot:
    """Change the given fields; ``api_key``/``fallback_api_key``: None keeps the stored key, "" removes it."""
    _unknown_fields(data)
    for field, value in data.items():
        setattr(bot, field, value)
    _apply_keys(bot, api_key, fallback_api_key)
    bot_validate(bot)
    changed = [*data.keys(), "updated_at"]
    if "identity_required" in data:
        changed.append("identity_secret_encrypted")
    if api_key is not None:
        changed.append("api_key_encrypted")
    if fallback_api_key is not None:
        changed.append("fallback_api_key_encrypted")
    bot.save(update_fields=changed)
    answer_cache_invalidate(bot_id=bot.pk)
    return bot


def bot_test_connection(*, bot: Bot) -> list[ConnectionReport]:
    """Call each configured model once and report what it answered (keys are redacted from messages)."""
    endpoints = endpoints_for(bot)
    if not endpoints:
        return [
            ConnectionReport(
                ok=True,
                provider="offline",
                model="extractive",
                message="No language model is configured: the bot answers offline with passages from its "
                "knowledge. Choose a provider and enter its API key to connect one.",
            )
        ]

    async def check_all() -> list[ConnectionReport]:
        reports = []
        for endpoint in endpoints:
            # A client of its own: this runs on a short-lived event loop, whose pool must not be cached.
            async with new_client(endpoint) as client:
                reports.append(await check_endpoint(endpoint, client=client))
        return reports

    return async_to_sync(check_all)()


def bot_rotate_encryption() -> int:
    """Re-encrypt every stored provider key with the first of FIELD_ENCRYPTION_KEYS; returns bots changed."""
    changed = 0
    for bot_id in Bot.objects.exclude(api_key_encrypted="", fallback_api_key_encrypted="").values_list(
        "pk", flat=True
    ):
        with transaction.atomic():
            bot = Bot.objects.select_for_update().get(pk=bot_id)
            bot.api_key_encrypted = crypto.rotate(bot.api_key_encrypted)
            bot.fallback_api_key_encrypted = crypto.rotate(bot.fallback_api_key_encrypted)
            bot.save(update_fields=["api_key_encrypted", "fallback_api_key_encrypted"])
            changed += 1
    return changed


@transaction.atomic
def bot_delete(*, bot: Bot) -> None:
    """Delete a bot with its conversations, messages and cached answers (knowledge sources stay: they may
    serve others)."""
    refused_origins_forget(bot=bot)  # otherwise gone by itself within days (REFUSED_ORIGINS_TTL_SECONDS)
    organization_id, bot_id = bot.organization_id, bot.pk
    bot.delete()
    transaction.on_commit(lambda: answer_cache_clear(organization_id=organization_id, bot_id=bot_id))


# --- what bots use: knowledge sources and API keys (accounts and knowledge know no bots) -----------------
def _same_organization(organization_id: int, bots: Iterable[Bot], what: str) -> list[Bot]:
    bots = list(bots)
    if any(bot.organization_id != organization_id for bot in bots):
        raise ApplicationError(f"{what} can only be used with bots of its own organization.")
    return bots


def source_set_bots(*, source: Any, bots: Iterable[Bot]) -> None:
    """The bots that answer from ``source`` (a knowledge source); bots of another organization are
    refused."""
    bots = _same_organization(source.organization_id, bots, "A source")
    before = set(source.bots.values_list("pk", flat=True))
    source.bots.set(bots)
    for bot_id in before ^ {bot.pk for bot in bots}:
        answer_cache_invalidate(bot_id=bot_id)  # its knowledge changed


def bot_sources_add(*, bot: Bot, sources: Iterable[Source]) -> None:
    """Let ``bot`` answer from ``sources`` too (already attached ones stay); another organization's
    sources are refused."""
    sources = list(sources)
    if any(source.organization_id != bot.organization_id for source in sources):
        raise ApplicationError("A bot can only use sources of its own organization.")
    bot.sources.add(*sources)


def bot_source_remove(*, bot: Bot, source: Source) -> None:
    """Stop ``bot`` answering from ``source``; the source itself stays (it may serve other bots)."""
    bot.sources.remove(source)


@transaction.atomic
def api_key_set_bots(*, api_key: ApiKey, bots: Iterable[Bot] | None) -> None:
    """Limit ``api_key`` to ``bots``; ``None`` or no bots lifts the limit (the key may use every bot)."""
    bots = _same_organization(api_key.organization_id, bots or (), "An API key")
    if not bots:
        ApiKeyBotLimit.objects.filter(api_key=api_key).delete()
        return
    limit, _ = ApiKeyBotLimit.objects.get_or_create(
        api_key=api_key, defaults={"organization_id": api_key.organization_id}
    )
    limit.bots.set(bots)


# --- conversations and messages --------------------------------------------------------------------


@dataclass(frozen=True)
class RecordedMessage:
    message: Message
    history: list[Turn]  # the conversation's recent turns before the message, oldest first


@transaction.atomic
def user_message_create(
    *,
    bot: Bot,
    conversation_id: str | None,
    channel: str,
    visitor_id: str,
    visitor_attributes: dict[str, Any] | None,
    text: str,
    language: str = "",
    by_api_key: bool = False,
    refused_code: str = "",
    history_turns: int = 0,
) -> RecordedMessage:
    """Persist the visitor's message before anything else happens (also when it is refused), and read the
    ``history_turns`` turns before it in the same transaction (one trip to a worker thread)."""
    if conversation_id:
        conversation = conversation_get_for_visitor(
            bot=bot, conversation_id=conversation_id, visitor_id=visitor_id, by_api_key=by_api_key
        )
        merged = {**(conversation.visitor_attributes or {}), **(visitor_attributes or {})}
        if merged != conversation.visitor_attributes:
            # The page identified the visitor after the conversation started (Parlor.identify, a lead form).
            conversation.visitor_attributes = merged
            Conversation.objects.filter(pk=conversation.pk).update(visitor_attributes=merged)
    else:
        conversation = Conversation.objects.create(
            organization_id=bot.organization_id,
            bot=bot,
            channel=channel,
            visitor_id=visitor_id,
            visitor_attributes=visitor_attributes or {},
            language=language,
        )
        webhook_events.conversation_started(conversation=conversation)
    status = MessageStatus.FAILED if refused_code else MessageStatus.COMPLETE
    message = Message.objects.create(
        organization_id=bot.organization_id,
        conversation=conversation,
        role=MessageRole.USER,
        text=text,
        status=status,
        error_code=refused_code,
    )
    # The inbox's summary and the activity time, in the one UPDATE that used to set last_message_at.
    summary_message_added(conversation_id=conversation.pk, role=MessageRole.USER, text=text, status=status)
    if not refused_code:  # a refused message (rate limits) is stored, not reported
        webhook_events.message_created(message=message)
    history = []
    if conversation_id and not refused_code:
        history = conversation_recent_turns(
            conversation_id=conversation.pk, before_message_id=message.pk, turns=history_turns
        )
    return RecordedMessage(message=message, history=history)


def user_message_refuse(*, message_id: int, code: str) -> None:
    Message.objects.filter(pk=message_id).update(status=MessageStatus.FAILED, error_code=code)
    summary_failure_added(message_id=message_id)


@dataclass
class AnswerRecord:
    """What the pipeline learns about an answer while it streams; stored by ``assistant_message_create``."""

    text: str = ""
    status: str = MessageStatus.COMPLETE
    error_code: str = ""
    sources: list[SourcePayload] = dataclasses.field(default_factory=list)
    answered_from_faq: bool = False
    answered_from_cache: bool = False
    faq_pair_id: int | None = None  # the FAQ pair answered with: counted when the answer is stored
    model: str = ""
    provider: str = ""
    offline: bool = False
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: Decimal | None = None
    latency_ms: int | None = None
    first_token_ms: int | None = None
    search_query: str = ""  # what retrieval searched
    search_rewritten: bool = False  # ``search_query`` is the model's standalone rewrite of the question
    retrieval_score: float | None = None  # the best passage's relevance, when passages were used
    question_message_id: int | None = None  # the visitor's message this answers
    question_vector: list[float] | None = None  # its vector as retrieval computed it, stored on it
    user_notice: str = ""  # shown to the visitor, not stored
    hit_token_limit: bool = False  # the model reached its output limit (OpenAI's "length"), not stored


@transaction.atomic
def assistant_message_create(
    *, conversation_id: uuid.UUID, organization_id: int, record: AnswerRecord
) -> Message:
    """Store an answer with everything learnt while it streamed, in one transaction: retried whole across
    a database restart (chatbots.pipeline), it never leaves half of its writes behind."""
    message = Message.objects.create(
        organization_id=organization_id,
        conversation_id=conversation_id,
        role=MessageRole.ASSISTANT,
        text=record.text,
        status=record.status,
        error_code=record.error_code,
        sources=record.sources,
        answered_from_faq=record.answered_from_faq,
        answered_from_cache=record.answered_from_cache,
        model=record.model,
        provider=record.provider,
        offline=record.offline,
        prompt_tokens=record.prompt_tokens,
        completion_tokens=record.completion_tokens,
        cost_usd=record.cost_usd,
        latency_ms=record.latency_ms,
        first_token_ms=record.first_token_ms,
        search_query=record.search_query,
        search_rewritten=record.search_rewritten,
        retrieval_score=record.retrieval_score,
    )
    summary_message_added(
        conversation_id=conversation_id, role=MessageRole.ASSISTANT, text=record.text, status=record.status,
        provider=record.provider, sources=record.sources,
    )  # fmt: skip
    if record.question_message_id is not None and record.question_vector is not None:
        # Stored here rather than with the question: the vector is still being computed then.
        Message.objects.filter(pk=record.question_message_id, conversation_id=conversation_id).update(
            question_embedding=record.question_vector
        )
    if record.faq_pair_id is not None and record.status == MessageStatus.COMPLETE:
        faq_pair_count_answer(pair_id=record.faq_pair_id)  # one UPDATE, in this same trip to a thread
    webhook_events.message_created(message=message)
    return message


# --- improving an answer from the inbox ---------------------------------------------------------------
MAX_IMPROVED_ANSWER_CHARS = 10_000
DEFAULT_IMPROVED_SOURCE_TITLE = "Improved answers"


@transaction.atomic
def answer_improve(
    *, message: Message, question: str, answer: str, source: Source | None = None, new_source_title: str = ""
) -> Source:
    """Turn a correction of ``message`` (one of the bot's answers) into an FAQ pair of its bot, so that
    ``question`` and its paraphrases get ``answer`` from then on. The pair goes into ``source`` (an FAQ
    source of the bot, replacing a pair there with the same question) or, with none, into a new FAQ
    source that the bot answers from; it records the message it came from. The source is re-ingested (the
    pair's embedding) by the usual ingestion job."""
    question, answer = question.strip(), answer.strip()
    if message.role != MessageRole.ASSISTANT:
        raise InvalidMessage("Only the bot's answers can be improved.")
    if not question or not answer:
        raise InvalidMessage("Enter the question and the correct answer.")
    if len(question) > 1000 or len(answer) > MAX_IMPROVED_ANSWER_CHARS:
        raise InvalidMessage("The question or the answer is too long.")
    bot = message.conversation.bot
    # An improved answer has been dealt with: it leaves the review queue.
    Message.objects.filter(pk=message.pk, reviewed_at=None).update(reviewed_at=timezone.now())
    origin = FaqOrigin(message_id=message.pk, conversation_id=message.conversation_id)
    if source is None:
        source = source_create(
            organization=bot.organization, kind=SourceKind.FAQ,
            title=new_source_title.strip() or DEFAULT_IMPROVED_SOURCE_TITLE,
            faq_pairs=[(question, answer)], faq_origin=origin,
        )  # fmt: skip
        source_set_bots(source=source, bots=[bot])
        return source
    if source.kind != SourceKind.FAQ or not bot.sources.filter(pk=source.pk).exists():
        raise ApplicationError("Choose one of this bot's FAQ sources.")
    wanted = faq_question_key(question)
    pairs = [
        (q, a)
        for q, a in FaqPair.objects.filter(source=source).order_by("pk").values_list("question", "answer")
        if faq_question_key(q) != wanted
    ]
    return source_update(source=source, data={}, faq_pairs=[*pairs, (question, answer)], faq_origin=origin)


@transaction.atomic
def conversation_delete(*, conversation: Conversation) -> None:
    """Delete a conversation with its messages (a customer's "delete this transcript")."""
    organization_id = conversation.organization_id
    conversation.delete()
    transaction.on_commit(lambda: question_panels_forget(organization_id=organization_id))


MAX_FEEDBACK_COMMENT_CHARS = 2000


def message_feedback_set(
    *, conversation: Conversation, message_id: int, value: str, comment: str = ""
) -> Message:
    """Thumbs up/down (or "" to withdraw) on one of this conversation's assistant messages."""
    if value not in (Feedback.UP, Feedback.DOWN, Feedback.NONE):
        raise InvalidMessage("Feedback must be 'up', 'down' or empty.")
    if len(comment) > MAX_FEEDBACK_COMMENT_CHARS:
        raise InvalidMessage(
            f"The feedback comment is too long (at most {MAX_FEEDBACK_COMMENT_CHARS} characters)."
        )
    updated = Message.objects.filter(
        pk=message_id, conversation=conversation, role=MessageRole.ASSISTANT
    ).update(feedback=value, feedback_comment=comment, feedback_at=timezone.now())
    if not updated:
        raise MessageNotFound()
    summary_feedback_changed(conversation_id=conversation.pk)
    if value == Feedback.DOWN and conversation.bot.handoff_after_thumbs_down:
        handoff_request(conversation=conversation, reason=HandoffReason.THUMBS_DOWN)
    message = Message.objects.get(pk=message_id)
    if value in (Feedback.UP, Feedback.DOWN):
        webhook_events.feedback_created(message=message)
    return message


def review_resolve(*, organization_id: int, message_ids: Iterable[int], resolved: bool = True) -> int:
    """Mark answers of the review queue resolved (or open again); answers of another organization are
    left alone. Returns how many changed."""
    answers = Message.objects.filter(
        organization_id=organization_id, pk__in=list(message_ids), role=MessageRole.ASSISTANT
    )
    if resolved:
        return answers.filter(reviewed_at=None).update(reviewed_at=timezone.now())
    return answers.exclude(reviewed_at=None).update(reviewed_at=None)
