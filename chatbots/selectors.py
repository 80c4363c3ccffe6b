"""Reads of bots and conversations for the chat surfaces (widget, chat page, chat APIs) and the admin."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import date
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.postgres.search import SearchQuery
from django.core import signing
from django.core.exceptions import ValidationError
from django.db import connection
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils import timezone

from accounts.models import ApiKey
from chatbots.exceptions import (
    BotNotFound,
    ConversationNotFound,
    ExportNotFound,
    ExportUnavailable,
    MessageNotFound,
)
from chatbots.llm.events import Turn
from chatbots.models import (
    MESSAGE_SEARCH_CONFIG,
    ApiKeyBotLimit,
    Bot,
    Conversation,
    ConversationExport,
    ExportStatus,
    Feedback,
    Message,
    MessageRole,
    MessageStatus,
)
from config.db import checked_connection
from knowledge.models import Source, SourceKind
from knowledge.selectors import faq_pairs_by_origin

BOT_CACHE_SECONDS = 5.0  # a change in the admin reaches open widgets within this many seconds
_bot_cache: dict[str, tuple[float, Bot]] = {}
HISTORY_STATUSES = (MessageStatus.COMPLETE, MessageStatus.INCOMPLETE)


# --- bots ------------------------------------------------------------------------------------------


def bot_get_public(*, public_id: str) -> Bot:
    """The bot behind a public id (widget, chat page); unknown ids are BotNotFound."""
    try:
        return Bot.objects.select_related("organization").get(public_id=public_id)
    except Bot.DoesNotExist:
        raise BotNotFound() from None


def bot_public_cache_forget(*, public_id: str) -> None:
    """Drop this process's cached bot (a changed identity secret applies at once here; elsewhere within
    ``BOT_CACHE_SECONDS``)."""
    _bot_cache.pop(public_id, None)


async def bot_get_public_cached(*, public_id: str) -> Bot:
    """Per-process cache of bot_get_public: chat traffic does not hit the database for the bot row."""
    now = time.monotonic()
    hit = _bot_cache.get(public_id)
    if hit and now - hit[0] < BOT_CACHE_SECONDS:
        return hit[1]
    bot = await sync_to_async(checked_connection(bot_get_public))(public_id=public_id)
    _bot_cache[public_id] = (now, bot)
    return bot


def bot_source_ids(*, bot: Bot) -> list[int]:
    """The ids of the knowledge sources the bot answers from. Plain SQL over the bot's own relation: it is
    on every message's critical path, and compiling the ORM query cost more than running it
    (bench/chat_load.py)."""
    table = Bot.sources.through._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT source_id FROM {table} WHERE bot_id = %s ORDER BY source_id", [bot.pk])  # noqa: S608
        return [row[0] for row in cursor.fetchall()]


# --- which bots an API key may use: the one place that reads ApiKeyBotLimit -------------------------------
def bots_for_api_key(*, api_key: ApiKey) -> QuerySet[Bot]:
    """The bots ``api_key`` may use: its organization's, narrowed to its limit if it has one (one query)."""
    limit = ApiKeyBotLimit.objects.filter(api_key_id=api_key.pk)
    return Bot.objects.filter(organization_id=api_key.organization_id).filter(
        Q(~Exists(limit)) | Q(pk__in=limit.values("bots"))
    )


def api_key_may_use_bot(*, api_key: ApiKey, bot: Bot) -> bool:
    """Whether ``api_key`` may use ``bot`` (chat, its conversations, the bots API)."""
    return (
        bot.organization_id == api_key.organization_id
        and bots_for_api_key(api_key=api_key).filter(pk=bot.pk).exists()
    )


def api_key_is_bot_limited(*, api_key: ApiKey) -> bool:
    """True for a key limited to certain bots: it may not change what other bots share (knowledge, bots)."""
    return ApiKeyBotLimit.objects.filter(api_key_id=api_key.pk).exists()


def api_key_bot_ids(*, api_keys: list[ApiKey]) -> dict[int, list[int] | None]:
    """Each key's bot ids (``None``: not limited, every bot) for showing keys, in one query."""
    limited: dict[int, list[int]] = {}
    rows = ApiKeyBotLimit.objects.filter(api_key__in=[k.pk for k in api_keys]).values_list(
        "api_key_id", "bots"
    )
    for api_key_id, bot_id in rows:
        limited.setdefault(api_key_id, [])
        if bot_id is not None:
            limited[api_key_id].append(bot_id)
    return {k.pk: sorted(limited[k.pk]) if k.pk in limited else None for k in api_keys}


def sources_for_api_key(*, api_key: ApiKey, sources: QuerySet) -> QuerySet:
    """``sources`` narrowed to the knowledge of the bots ``api_key`` may use: a key limited to certain bots
    sees only their sources, any other key all of its organization's (also those no bot uses yet)."""
    if not api_key_is_bot_limited(api_key=api_key):
        return sources
    return sources.filter(bots__in=bots_for_api_key(api_key=api_key)).distinct()


def bots_by_public_ids(*, organization_id: int, public_ids: list[str]) -> tuple[list[Bot], list[str]]:
    """The organization's bots with these public ids, in the given order, and the ids that matched none."""
    wanted = list(dict.fromkeys(public_ids))
    found = {
        b.public_id: b for b in Bot.objects.filter(organization_id=organization_id, public_id__in=wanted)
    }
    return [found[p] for p in wanted if p in found], [p for p in wanted if p not in found]


# --- conversations ---------------------------------------------------------------------------------


def conversation_get_for_visitor(
    *, bot: Bot, conversation_id: str | uuid.UUID, visitor_id: str, by_api_key: bool = False
) -> Conversation:
    """The bot's conversation with that id, for a caller who may continue it; anything else is not found.

    A conversation id alone proves nothing (it travels in URLs, logs and the browser's storage): a widget
    visitor must present the visitor id the conversation was started with, so one started without any
    cannot be continued from a browser. An API key (already checked to be allowed to use the bot) may
    continue any of the bot's conversations, as it may read them; a visitor id it sends must match."""
    try:
        conversation = Conversation.objects.get(pk=conversation_id, bot=bot)
    except (Conversation.DoesNotExist, ValueError, TypeError, ValidationError):  # not even a UUID
        raise ConversationNotFound() from None
    if by_api_key:
        if visitor_id and conversation.visitor_id and conversation.visitor_id != visitor_id:
            raise ConversationNotFound()
    elif not visitor_id or conversation.visitor_id != visitor_id:
        raise ConversationNotFound()
    return conversation


def conversation_get_for_api_key(*, api_key: ApiKey, conversation_id: Any) -> Conversation:
    """A conversation of the key's organization and of a bot the key may use; anything else is 404."""
    try:
        conversation = Conversation.objects.select_related("bot").get(
            pk=conversation_id, organization_id=api_key.organization_id
        )
    except (Conversation.DoesNotExist, ValueError, TypeError, ValidationError):  # not even a UUID
        raise ConversationNotFound() from None
    if not api_key_may_use_bot(api_key=api_key, bot=conversation.bot):
        raise ConversationNotFound()
    return conversation


# --- the inbox ---------------------------------------------------------------------------------------
FALLBACK_PROVIDER = "fallback_reply"  # what the pipeline stores as the provider of the bot's fallback reply
PROBLEM_STATUSES = (MessageStatus.FAILED, MessageStatus.INCOMPLETE)


def unanswered_q() -> Q:
    """Assistant messages that did not answer from the knowledge: the bot's fallback reply, or a complete
    answer without any source (nothing relevant was found)."""
    return Q(role=MessageRole.ASSISTANT, status=MessageStatus.COMPLETE) & (
        Q(provider=FALLBACK_PROVIDER) | Q(sources=[])
    )


def _messages_of_outer() -> QuerySet[Message]:
    # The organization as well as the conversation: with the organization of the outer query known,
    # PostgreSQL reads only that organization's part of the organization-leading partial indexes.
    return Message.objects.filter(
        organization_id=OuterRef("organization_id"), conversation_id=OuterRef("pk")
    ).order_by()


def conversations_for_inbox(conversations: QuerySet[Conversation]) -> QuerySet[Conversation]:
    """Conversations as the inbox lists them, in one query for a page: with their bot; the title
    (``first_question``), ``message_count`` and the badges (``has_thumbs_down``, ``has_unanswered``,
    ``has_failure``) are columns of the conversation (``chatbots.conversation_summary``), so PostgreSQL
    walks ``conversation_org_recent`` (or a filter's partial index) and reads nothing else for a row. The
    search document is not loaded: only the search reads it, in the database."""
    return conversations.select_related("bot").defer("search_document")


def conversations_with_feedback(
    conversations: QuerySet[Conversation], *, value: str
) -> QuerySet[Conversation]:
    """Conversations with at least one answer rated ``value`` ("up", "down"), or "any" rating at all.
    Thumbs down, the inbox's badge, is the conversation's flag (partial index
    ``conversation_org_thumbs_down``); the other two look at the rated messages (``message_rated``)."""
    if value == Feedback.DOWN:
        return conversations.filter(has_thumbs_down=True)
    rated = Q(feedback__in=[Feedback.UP, Feedback.DOWN]) if value == "any" else Q(feedback=value)
    return conversations.filter(Exists(_messages_of_outer().filter(rated)))


def conversations_unanswered(conversations: QuerySet[Conversation]) -> QuerySet[Conversation]:
    """Conversations where the bot gave its fallback reply or answered without a source at least once
    (the conversation's flag: partial index ``conversation_org_unanswered``)."""
    return conversations.filter(has_unanswered=True)


def conversations_with_failure(conversations: QuerySet[Conversation]) -> QuerySet[Conversation]:
    """Conversations with a failed (provider error, refused) or incomplete (interrupted) message
    (the conversation's flag: partial index ``conversation_org_failure``)."""
    return conversations.filter(has_failure=True)


def conversation_languages(conversations: QuerySet[Conversation]) -> list[str]:
    """The visitors' languages these conversations have (one query, for the inbox's language filter)."""
    return sorted(conversations.exclude(language="").order_by().values_list("language", flat=True).distinct())


def conversations_search(
    conversations: QuerySet[Conversation], *, text: str, organization_id: int | None = None
) -> QuerySet[Conversation]:
    """Conversations whose messages contain the words of ``text`` (web-search syntax: "quoted phrases",
    -excluded, or), through each conversation's search document and the GIN index ``conversation_search``;
    a visitor id matches too. The words may be in different messages of the conversation (it is the
    conversation that is found); a phrase's words are consecutive words of its text.

    ``organization_id`` (when the conversations are one organization's) is named in the condition: the
    index leads with the organization, so a frequent word reads that organization's matches only.

    The ``simple`` configuration matches words as written in any language (no stemming: "parcel" does not
    find "parcels"), see ``MESSAGE_SEARCH_CONFIG``."""
    text = text.strip()
    if not text:
        return conversations
    query = SearchQuery(text, config=MESSAGE_SEARCH_CONFIG, search_type="websearch")
    if organization_id is not None:
        conversations = conversations.filter(organization_id=organization_id)
    return conversations.filter(Q(search_document=query) | Q(visitor_id=text))


@dataclass(frozen=True)
class InboxFilters:
    """The inbox's filters (the admin's list filters and the conversations API ask the same)."""

    bot_ids: list[int] | None = None
    channel: str = ""
    since: date | None = None  # last activity on or after this day
    until: date | None = None  # last activity on or before this day
    feedback: str = ""  # "up", "down", "any" or "" (no filter)
    unanswered: bool = False
    failed: bool = False
    language: str = ""  # the visitor's language ("de"), "" for any
    handoff: str = ""  # "waiting", "taken", "any" (ever handed to a person) or "" (no filter)
    search: str = ""


def conversations_handed_over(
    conversations: QuerySet[Conversation], *, status: str
) -> QuerySet[Conversation]:
    """Conversations waiting for a person ("waiting"), with one ("taken"), or ever handed over ("any")."""
    handed = conversations.filter(handoff_requested_at__isnull=False)  # the partial index's condition
    if status in ("waiting", "taken"):
        return handed.filter(handoff_status=status)
    return handed if status == "any" else conversations


def conversations_filtered(
    conversations: QuerySet[Conversation], *, filters: InboxFilters, organization_id: int | None = None
) -> QuerySet[Conversation]:
    """The conversations the filters select; ``organization_id``: they are all of this organization
    (the search then reads only its messages)."""
    if filters.bot_ids is not None:
        conversations = conversations.filter(bot_id__in=filters.bot_ids)
    if filters.channel:
        conversations = conversations.filter(channel=filters.channel)
    if filters.since:
        conversations = conversations.filter(last_message_at__date__gte=filters.since)
    if filters.until:
        conversations = conversations.filter(last_message_at__date__lte=filters.until)
    if filters.feedback:
        conversations = conversations_with_feedback(conversations, value=filters.feedback)
    if filters.unanswered:
        conversations = conversations_unanswered(conversations)
    if filters.failed:
        conversations = conversations_with_failure(conversations)
    if filters.language:
        conversations = conversations.filter(language=filters.language)
    if filters.handoff:
        conversations = conversations_handed_over(conversations, status=filters.handoff)
    return conversations_search(conversations, text=filters.search, organization_id=organization_id)


def conversations_for_api_key(*, api_key: ApiKey) -> QuerySet[Conversation]:
    """The conversations an API key may read: of its organization and of the bots it may use."""
    return Conversation.objects.filter(
        organization_id=api_key.organization_id, bot__in=bots_for_api_key(api_key=api_key)
    )


def conversation_transcript(*, conversation: Conversation) -> list[Message]:
    """The messages of a conversation for reading it as a chat, oldest first, each answer with
    ``improved_by``: the FAQ pair that corrects it, if any (two queries)."""
    messages = list(conversation_messages(conversation=conversation))
    answers = [m.pk for m in messages if m.role == MessageRole.ASSISTANT]
    pairs = (
        faq_pairs_by_origin(organization_id=conversation.organization_id, message_ids=answers)
        if answers
        else {}
    )
    for message in messages:
        message.improved_by = pairs.get(message.pk)
    return messages


def conversation_answer_get(*, conversation: Conversation, message_id: Any) -> Message:
    """One of the bot's answers in this conversation (MessageNotFound for anything else)."""
    try:
        return Message.objects.select_related("conversation__bot__organization").get(
            pk=int(message_id), conversation=conversation, role=MessageRole.ASSISTANT
        )
    except (Message.DoesNotExist, ValueError, TypeError):
        raise MessageNotFound() from None


def answer_question(*, message: Message) -> str:
    """The visitor's question an answer replied to: the last user message before it."""
    question = (
        Message.objects.filter(
            conversation_id=message.conversation_id, role=MessageRole.USER, pk__lt=message.pk
        )
        .order_by("-created_at", "-id")
        .values_list("text", flat=True)
        .first()
    )
    return question or ""


def bot_faq_sources(*, bot: Bot) -> QuerySet[Source]:
    """The FAQ sources a bot answers from (where a corrected answer can go)."""
    return Source.objects.filter(bots=bot, kind=SourceKind.FAQ, organization_id=bot.organization_id).order_by(
        "title", "pk"
    )


def conversation_messages(*, conversation: Conversation) -> QuerySet[Message]:
    """The whole conversation, oldest first (refused messages included)."""
    return conversation.messages.order_by("created_at", "id")


@dataclass(frozen=True)
class ConversationRef:
    """A conversation a message names, before the message is stored (and its access checked)."""

    id: str | None
    visitor_id: str
    by_api_key: bool


def conversation_recent_user_texts(
    *, bot: Bot, conversation_id: str, visitor_id: str, by_api_key: bool, limit: int
) -> list[str]:
    """The user's last ``limit`` messages of a conversation, oldest first, to search a follow-up with.

    Read while the new message is being stored, so with the same rule as ``conversation_get_for_visitor``
    (nothing of a conversation the caller may not continue)."""
    messages = Message.objects.filter(
        conversation_id=conversation_id, conversation__bot=bot, role=MessageRole.USER,
        status__in=HISTORY_STATUSES,
    )  # fmt: skip
    if not by_api_key:
        if not visitor_id:
            return []
        messages = messages.filter(conversation__visitor_id=visitor_id)
    try:
        texts = list(messages.order_by("-created_at", "-id").values_list("text", flat=True)[:limit])
    except (ValueError, ValidationError):  # not a conversation id at all
        return []
    return texts[::-1]


def conversation_recent_turns(
    *, conversation_id: uuid.UUID, before_message_id: int, turns: int
) -> list[Turn]:
    """The last ``turns`` exchanges before a message, oldest first, for the prompt."""
    if turns <= 0:
        return []
    rows = list(
        Message.objects.filter(
            conversation_id=conversation_id, pk__lt=before_message_id, status__in=HISTORY_STATUSES
        )
        .exclude(text="")
        .order_by("-created_at", "-id")
        .values("role", "text")[: turns * 2]
    )
    # An operator's reply reads to the model as the assistant's turn: it is what the visitor was told.
    return [
        Turn(role="user" if row["role"] == "user" else "assistant", content=row["text"])
        for row in reversed(rows)
    ]


# --- conversation exports -------------------------------------------------------------------------
EXPORT_DOWNLOAD_SALT = "chatbots.export.download"


def export_download_token(*, export: ConversationExport) -> str:
    """A signed token naming the export: its link works without a login (to hand to a browser or a
    script) until the export expires."""
    return signing.dumps({"export": export.pk, "org": export.organization_id}, salt=EXPORT_DOWNLOAD_SALT)


def export_available(*, export: ConversationExport) -> ConversationExport:
    """The export if its file can be downloaded now, else ExportUnavailable (not ready, failed, expired)."""
    if export.status != ExportStatus.READY or not export.file or export.expires_at is None:
        raise ExportUnavailable()
    if export.expires_at <= timezone.now():
        raise ExportUnavailable()
    return export


def export_by_token(*, token: str) -> ConversationExport:
    """The export a download token names (ExportNotFound for a forged one), if still downloadable."""
    try:
        data = signing.loads(
            token, salt=EXPORT_DOWNLOAD_SALT, max_age=settings.CONVERSATION_EXPORT_HOURS * 3600
        )
        export = ConversationExport.objects.get(pk=int(data["export"]), organization_id=int(data["org"]))
    except (signing.BadSignature, ConversationExport.DoesNotExist, KeyError, TypeError, ValueError):
        raise ExportNotFound() from None
    return export_available(export=export)


def export_get_for_api_key(*, api_key: ApiKey, export_id: Any) -> ConversationExport:
    """An export of the key's organization; a key limited to some bots only sees exports of those bots."""
    try:
        export = ConversationExport.objects.get(pk=int(export_id), organization_id=api_key.organization_id)
    except (ConversationExport.DoesNotExist, TypeError, ValueError):
        raise ExportNotFound() from None
    if api_key_is_bot_limited(api_key=api_key):
        bot_ids = (export.filters or {}).get("bot_ids")
        allowed = set(bots_for_api_key(api_key=api_key).values_list("pk", flat=True))
        if bot_ids is None or not set(bot_ids) <= allowed:
            raise ExportNotFound()
    return export
