"""The chat pipeline: one async code path behind the WebSocket, SSE, REST and OpenAI-compatible transports.

Order matters and is part of the contract: validate → refuse early (paused bot, rate limits, busy
conversation) → persist the user's message → FAQ or retrieval → prompt within budget → stream from the
provider → persist the answer (also when the caller goes away mid-stream). Retrieval only reads, so it
starts while the message is being stored; nothing is answered before the message is stored. A first
question answered before is answered from the answer cache instead of retrieval and the model
(chatbots.pipeline.cache).
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import time
import weakref
from collections.abc import AsyncIterator, Awaitable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import DatabaseError

from chatbots.exceptions import (
    BotPaused,
    ChatError,
    ConversationBusy,
    InvalidMessage,
    MessageTooLong,
    RateLimited,
)
from chatbots.handoff import HandoffReason, handoff_request, handoff_state, handoff_visitor_message_relay
from chatbots.handoff_phrases import asks_for_a_person
from chatbots.llm import Completed, Interrupted, LLMUnavailable, TextDelta, stream_chat
from chatbots.llm.events import Generation, Turn
from chatbots.llm.prompt import cited_passages
from chatbots.llm.rewrite import Rewrite, rewrite_question, rewrites_queries
from chatbots.models import HANDOFF_ACTIVE, Bot, Conversation, Message, MessageStatus
from chatbots.pipeline.blocking import in_thread_pool
from chatbots.pipeline.cache import (
    CacheLookup,
    cache_lookup,
    cache_store,
    cacheable_request,
    cached_answer,
    worth_storing,
)
from chatbots.pipeline.events import Accepted, ChatEvent, ChatRequest, Delta, Finished, HandoffUpdate, Sources
from chatbots.pipeline.ratelimit import (
    Limit,
    acquire_conversation_slot,
    check_rate_limits,
    release_conversation_slot,
)
from chatbots.selectors import ConversationRef, bot_source_ids, conversation_recent_user_texts
from chatbots.services import (
    AnswerRecord,
    RecordedMessage,
    assistant_message_create,
    user_message_create,
    user_message_refuse,
)
from config import log_context, shutdown
from config.db import replace_broken_connection, retrying_across_restarts
from knowledge.embedders import QueryVector, embed_search_query
from knowledge.questions import question_shape
from knowledge.retrieval import RetrievedChunk
from knowledge.selectors import (
    CONTEXT_TURNS,
    FaqAnswer,
    Knowledge,
    knowledge_for_question,
    knowledge_language,
)

logger = logging.getLogger("parlor.chat")
FAQ_CHUNK_CHARS = 24  # an FAQ answer is streamed in small pieces so every transport behaves the same


def _rate_limits(request: ChatRequest) -> list[Limit]:
    """Narrowest first. Visitor ids are chosen by the client, so a widget message also counts against its
    address: rotating ids does not get one address past its limit."""
    bot_id = request.bot.pk
    if request.api_key_id is not None:
        limits = [Limit(f"key:{request.api_key_id}", settings.CHAT_RATE_LIMIT_API_KEY)]
    else:
        visitor = request.visitor_id or request.client_ip or "anonymous"
        limits = [Limit(f"visitor:{bot_id}:{visitor}", settings.CHAT_RATE_LIMIT_VISITOR)]
        if request.client_ip:
            limits.append(Limit(f"ip:{bot_id}:{request.client_ip}", settings.CHAT_RATE_LIMIT_IP))
    return [*limits, Limit(f"bot:{bot_id}", settings.CHAT_RATE_LIMIT_BOT)]


VISITOR_ID = re.compile(r"^[A-Za-z0-9_.:@-]{1,64}$")


def validate_visitor_id(value: object) -> str:
    """A visitor id chosen by the widget or an API client: up to 64 letters, digits or ``_.:@-``;
    ``""`` when none was given."""
    if value in (None, ""):
        return ""
    if not isinstance(value, str) or not VISITOR_ID.match(value):
        raise InvalidMessage("A visitor id is up to 64 letters, digits or _.:@-")
    return value


LANGUAGE_SUBTAG = re.compile(r"^[a-z]{2,3}$")


def visitor_language(value: object) -> str:
    """The primary language subtag of what a client named (``"de-CH"``, an Accept-Language header such
    as ``"fr-FR,fr;q=0.9"``), lower-cased; ``""`` for anything else. Never refuses a message: it only
    labels the conversation for the inbox's language filter."""
    if not isinstance(value, str):
        return ""
    first = value.split(",")[0].split(";")[0].strip().replace("_", "-")
    primary = first.split("-")[0].lower()
    return primary if LANGUAGE_SUBTAG.match(primary) else ""


def validate_text(text: object) -> str:
    if not isinstance(text, str) or not text.strip():
        raise InvalidMessage("Please type a message.")
    text = text.strip()
    if len(text) > settings.CHAT_MAX_MESSAGE_CHARS:
        raise MessageTooLong(
            f"The message is too long (at most {settings.CHAT_MAX_MESSAGE_CHARS} characters)."
        )
    return text


def gather_knowledge(
    *,
    bot: Bot,
    question: str,
    query_vector: QueryVector,
    context: list[str] | None,
    conversation: ConversationRef,
) -> Knowledge:
    """What the answer is built from, in one trip to the thread pool: a matching FAQ, or the passages found
    for the question in its conversation. ``query_vector`` is usually still being computed: the full-text
    search starts without it. ``context``: the user's earlier messages when the client sent the history
    (OpenAI-compatible endpoint); otherwise they are read from the stored conversation."""
    if context is None:
        context = conversation_recent_user_texts(
            bot=bot, conversation_id=conversation.id, visitor_id=conversation.visitor_id,
            by_api_key=conversation.by_api_key, limit=CONTEXT_TURNS,
        ) if conversation.id else []  # fmt: skip
    return knowledge_for_question(
        organization_id=bot.organization_id, source_ids=bot_source_ids(bot=bot), question=question,
        context=context, top_k=bot.retrieval_top_k, min_relevance=bot.retrieval_min_score,
        query_vector=query_vector,
    )  # fmt: skip


_slots: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = weakref.WeakKeyDictionary()


def _preparation_slots() -> asyncio.Semaphore:
    """Admission to the CPU-bound steps before the model is called (embedding, retrieval), first come first
    served. Under a burst, answers then start one after another instead of all of them waiting for every
    message's retrieval (measured: 1,000 simultaneous messages pushed most past the first-token limit)."""
    loop = asyncio.get_running_loop()
    if loop not in _slots:
        _slots[loop] = asyncio.Semaphore(settings.CHAT_PREPARATION_CONCURRENCY)
    return _slots[loop]


# Embeddings get threads of their own: a retrieval thread waits for its question's vector, which must
# never queue behind retrieval threads in the same pool.
_embedding_threads = ThreadPoolExecutor(max_workers=os.cpu_count() or 2, thread_name_prefix="parlor-embed")


def _embed_question(text: str) -> list[float]:
    replace_broken_connection()  # the serving model's name is read from the database now and then
    return embed_search_query(text)


@dataclass(frozen=True)
class Prepared:
    knowledge: Knowledge
    rewrite: Rewrite | None = None  # the model's standalone rewrite that was searched instead of the message
    # The knowledge's language when the visitor writes in another one: the model is told to answer in the
    # visitor's language all the same.
    other_knowledge_language: str = ""


def _stored_user_texts(request: ChatRequest) -> list[str]:
    """The user's earlier messages in the stored conversation (as ``gather_knowledge`` reads them)."""
    if not request.conversation_id:
        return []
    texts = conversation_recent_user_texts(
        bot=request.bot, conversation_id=request.conversation_id, visitor_id=request.visitor_id,
        by_api_key=request.api_key_id is not None, limit=CONTEXT_TURNS + 1,
    )  # fmt: skip
    # Read while the new message is being stored: it may already be there, and is not an earlier message.
    if texts and texts[-1] == validate_text(request.text):
        texts = texts[:-1]
    return texts[-CONTEXT_TURNS:]


@dataclass(frozen=True)
class RewritePlan:
    needed: bool  # a follow-up that does not name its own topic, or a question to translate
    language: str = ""  # the knowledge's language to write the search question in ("": keep the visitor's)


def _rewrite_plan(bot: Bot, text: str, earlier: list[str]) -> RewritePlan:
    """Whether the model rewrites the message before it is searched: a follow-up that does not name its own
    topic (no model call for a first or self-contained question), or a question written in another language
    than the bot's knowledge, which is searched in the knowledge's language."""
    shape = question_shape(text)
    language = knowledge_language(organization_id=bot.organization_id, source_ids=bot_source_ids(bot=bot))
    if language and shape.language != language:
        return RewritePlan(needed=True, language=language)
    return RewritePlan(needed=bool(earlier) and not shape.self_contained)


async def _prepare_knowledge(request: ChatRequest, text: str, query_vector: Future[list[float]]) -> Prepared:
    """The FAQ match and both searches, while ``query_vector`` is being computed on an embedding thread:
    another thread looks up the bot's sources and runs the full-text search meanwhile, so the slower of
    the two sets the pace. A bot with a model first has a follow-up rewritten (outside the admission
    slots: it waits on the network, not the CPU); on a timeout or an error, the offline conversational
    search runs as without a model."""
    context = None
    if request.history is not None:
        context = [turn["content"] for turn in request.history if turn["role"] == "user"]
    rewrite = None
    other_knowledge_language = ""
    if rewrites_queries(request.bot):
        if context is None:
            context = await in_thread_pool(_stored_user_texts)(request)
        plan = await in_thread_pool(_rewrite_plan)(request.bot, text, context)
        if plan.needed:
            rewrite = await rewrite_question(
                bot=request.bot, question=text, earlier=context[-CONTEXT_TURNS:], language=plan.language
            )
        other_knowledge_language = plan.language
        if rewrite is not None:
            text, context = rewrite.text, []
            query_vector = _embedding_threads.submit(_embed_question, text)
    async with _preparation_slots():
        conversation = ConversationRef(
            id=request.conversation_id,
            visitor_id=request.visitor_id,
            by_api_key=request.api_key_id is not None,
        )
        knowledge = await in_thread_pool(gather_knowledge)(
            bot=request.bot,
            question=text,
            query_vector=query_vector,
            context=context,
            conversation=conversation,
        )
    return Prepared(knowledge=knowledge, rewrite=rewrite, other_knowledge_language=other_knowledge_language)


def _count_rewrite(record: AnswerRecord, rewrite: Rewrite | None) -> None:
    """The rewrite's tokens and cost belong to the answer it was made for."""
    if rewrite is None:
        return
    record.prompt_tokens += rewrite.usage.prompt_tokens
    record.completion_tokens += rewrite.usage.completion_tokens
    if rewrite.cost_usd is not None:
        record.cost_usd = (record.cost_usd or 0) + rewrite.cost_usd


def _computed_vector(query_vector: Future[list[float]]) -> list[float] | None:
    """The question's vector if it has been computed (retrieval waits for it, so by the end of the answer
    it has): stored with the question for grouping similar ones, without a second embedder call."""
    if not query_vector.done() or query_vector.cancelled() or query_vector.exception() is not None:
        return None
    return query_vector.result()


def _in_background(awaitable: Awaitable[Any]) -> asyncio.Future[Any]:
    """Start ``awaitable`` now; if nobody awaits it (the message was refused), its error is dropped."""
    future = asyncio.ensure_future(awaitable)
    future.add_done_callback(lambda done: done.cancelled() or done.exception())
    return future


async def _fixed_reply(text: str) -> AsyncIterator[str]:
    yield text


async def _faq_answer(faq: FaqAnswer, record: AnswerRecord) -> AsyncIterator[str]:
    """An FAQ answer, streamed in small pieces so every transport behaves as for a model's answer."""
    record.answered_from_faq = True
    record.faq_pair_id = faq.pair_id
    record.provider = "faq"
    for start in range(0, len(faq.answer), FAQ_CHUNK_CHARS):
        yield faq.answer[start : start + FAQ_CHUNK_CHARS]


async def _model_answer(
    bot: Bot,
    messages: list[Turn],
    passages: list[RetrievedChunk],
    record: AnswerRecord,
    generation: Generation | None = None,
    other_knowledge_language: str = "",
) -> AsyncIterator[str]:
    """The provider's answer; usage, cost and how it ended go into ``record``, also when the answer is stopped
    before the provider finished (the tokens streamed so far, estimated if the provider sent no count)."""
    interrupted = Interrupted()
    events = stream_chat(
        bot=bot,
        messages=messages,
        passages=passages,
        generation=generation,
        interrupted=interrupted,
        other_knowledge_language=other_knowledge_language,
    )
    try:
        async for event in events:
            if isinstance(event, TextDelta):
                yield event.text
            elif isinstance(event, Completed):
                _record_usage(record, event)
                record.hit_token_limit = event.hit_token_limit
                if event.incomplete:
                    record.status = MessageStatus.INCOMPLETE
                    record.error_code = "stream_interrupted"
                # Show only the sources the answer used: what the offline provider quoted, or what a model
                # cited by number (a model that cites nothing keeps every source).
                used_ids = event.used_passages
                if used_ids is None:
                    used_ids = cited_passages(record.text, passages)
                if used_ids is not None:
                    used = {(p.source_id, p.page, p.start) for p in passages if p.chunk_id in used_ids}
                    record.sources = [
                        s for s in record.sources if (s["source_id"], s["page"], s.get("start")) in used
                    ]
    except LLMUnavailable as exc:
        record.status = MessageStatus.INCOMPLETE if record.text else MessageStatus.FAILED
        record.error_code = "llm_unavailable"
        record.user_notice = exc.user_message
    finally:
        await events.aclose()  # closed here, not when collected: ``interrupted`` is filled in now
        if interrupted.completed is not None:  # stopped before the provider finished
            _record_usage(record, interrupted.completed)


def _wants_person(bot: Bot, conversation: Conversation, request: ChatRequest, text: str) -> bool:
    """A person answers instead of the bot: one is already involved, or the visitor asks for one (the
    widget's button, or in words)."""
    if conversation.handoff_status in HANDOFF_ACTIVE:
        return True
    return bot.handoff_enabled and (request.asks_for_person or asks_for_a_person(text))


def _hand_to_person(bot: Bot, conversation: Conversation, message: Message) -> HandoffUpdate:
    """The visitor's message goes to the operators (a handoff already on), or starts a handoff."""
    if conversation.handoff_status in HANDOFF_ACTIVE:
        handoff_visitor_message_relay(message=message)
        state = handoff_state(conversation=conversation)
    else:
        state = handoff_request(conversation=conversation, reason=HandoffReason.VISITOR)
    return HandoffUpdate(status=state.status, available=state.available, operator_name=state.operator_name)


def _escalate_after_fallback(bot: Bot, conversation_id: Any) -> HandoffUpdate:
    conversation = Conversation.objects.get(pk=conversation_id)
    state = handoff_request(conversation=conversation, reason=HandoffReason.FALLBACK)
    return HandoffUpdate(status=state.status, available=state.available, operator_name=state.operator_name)


def _log_answer(record: AnswerRecord, message_id: int | None) -> None:
    """One line per answer with its figures; never its text (the ids in the log context say whose)."""
    logger.info(
        "answer %s from %s in %s ms", record.status, record.provider or "-", record.latency_ms,
        extra={"message_id": message_id, "status": record.status, "error_code": record.error_code or None,
               "provider": record.provider, "model": record.model, "answered_from_cache": record.answered_from_cache,
               "answered_from_faq": record.answered_from_faq, "first_token_ms": record.first_token_ms,
               "latency_ms": record.latency_ms, "prompt_tokens": record.prompt_tokens,
               "completion_tokens": record.completion_tokens},
    )  # fmt: skip


def _fresh_answer(
    bot: Bot,
    text: str,
    history: list[Turn],
    knowledge: Knowledge,
    record: AnswerRecord,
    generation: Generation | None = None,
    other_knowledge_language: str = "",
) -> AsyncIterator[str]:
    """The FAQ's answer, the bot's fixed reply when its knowledge has none, or the model's answer.
    ``other_knowledge_language``: the knowledge's language when the visitor writes in another one."""
    record.sources = knowledge.sources
    record.search_query = knowledge.search_query
    if knowledge.passages:
        record.retrieval_score = max(passage.similarity for passage in knowledge.passages)
    if knowledge.faq is not None:
        return _faq_answer(knowledge.faq, record)
    if not knowledge.passages and bot.answer_style == "strict" and bot.fallback_reply:
        record.provider = "fallback_reply"
        return _fixed_reply(bot.fallback_reply)
    messages = [*history, Turn(role="user", content=text)]
    return _model_answer(bot, messages, knowledge.passages, record, generation, other_knowledge_language)


def _ending(exc: BaseException) -> str:
    """The error code of an answer that an exception stopped: a database error is never reported as the
    visitor's disconnection (after a PostgreSQL restart, answers were stored as "client_disconnected")."""
    if isinstance(exc, (asyncio.CancelledError, GeneratorExit)):
        return "server_shutdown" if shutdown.stopping() else "client_disconnected"
    if isinstance(exc, DatabaseError):
        return "database_error"
    return "internal_error"


def _record_usage(record: AnswerRecord, completed: Completed) -> None:
    record.model, record.provider, record.offline = completed.model, completed.provider, completed.offline
    record.prompt_tokens = completed.usage.prompt_tokens
    record.completion_tokens = completed.usage.completion_tokens
    record.cost_usd = completed.cost_usd


# Stores that must not lose what a visitor typed or saw: retried across a database restart.
def _store_user_message(**kwargs: Any) -> RecordedMessage:
    return retrying_across_restarts(user_message_create, seconds=settings.CHAT_SAVE_RETRY_SECONDS)(**kwargs)


def _store_answer(**kwargs: Any) -> Message:
    return retrying_across_restarts(assistant_message_create, seconds=settings.CHAT_SAVE_RETRY_SECONDS)(
        **kwargs
    )


async def answer_message(request: ChatRequest) -> AsyncIterator[ChatEvent]:
    """Answer one message, yielding Accepted, then Delta*, Sources, Finished.

    Raises ChatError before Accepted when the message is refused (the refused message is still stored
    when it could be attributed to a conversation). Closing or cancelling the iteration mid-stream stops
    the provider request and stores the partial answer, marked incomplete. Redis being unavailable never
    refuses a message (rate limits and slots are then counted in this process: chatbots.pipeline.ratelimit);
    the database being restarted delays the stores, within ``CHAT_SAVE_RETRY_SECONDS``.
    """
    started = time.monotonic()
    bot = request.bot
    log_context.bind(
        organization_id=bot.organization_id, bot_id=bot.pk, conversation_id=request.conversation_id
    )
    text = validate_text(request.text)
    if bot.status != "active":
        raise BotPaused()

    with shutdown.in_flight():  # a graceful shutdown waits for this answer
        refusal: ChatError | None = None
        prepared: asyncio.Future[Prepared] | None = None
        query_vector: Future[list[float]] | None = None
        lookup: CacheLookup | None = None
        try:
            await check_rate_limits(_rate_limits(request), bot_id=bot.pk)
        except RateLimited as exc:
            if not exc.first_refusal:
                raise  # the rest of a flood is counted (ratelimit.refusals_key), not stored
            refusal = exc
        else:
            if cacheable_request(request):
                lookup = await cache_lookup(bot=bot, text=text)
        if refusal is None and (lookup is None or lookup.hit is None):
            # Retrieval (embedding included) is most of the time before the first token: it runs on other
            # threads while the message is stored. The question goes to an embedding thread at once (they
            # serve questions in arrival order); only the searches wait for admission.
            query_vector = _embedding_threads.submit(_embed_question, text)
            prepared = _in_background(_prepare_knowledge(request, text, query_vector))
        recorded = await in_thread_pool(_store_user_message)(
            bot=bot,
            conversation_id=request.conversation_id,
            channel=request.channel,
            visitor_id=request.visitor_id,
            visitor_attributes=request.visitor_attributes,
            language=visitor_language(request.language),
            text=text,
            by_api_key=request.api_key_id is not None,
            refused_code=refusal.code if refusal else "",
            history_turns=bot.history_turns if request.history is None else 0,
        )
        user_message = recorded.message
        conversation_id = user_message.conversation_id
        log_context.bind(conversation_id=conversation_id)
        if refusal:
            logger.info("message refused: %s", refusal.code, extra={"code": refusal.code})
            raise refusal
        if _wants_person(bot, user_message.conversation, request, text):
            # A person answers this conversation: the message is stored and relayed, the bot stays silent.
            if prepared is not None:
                prepared.cancel()
            handoff = await in_thread_pool(_hand_to_person)(bot, user_message.conversation, user_message)
            yield Accepted(conversation=user_message.conversation, user_message_id=user_message.pk)
            yield handoff
            yield Finished(message_id=None, conversation_id=conversation_id, text="", sources=[], prompt_tokens=0,
                           completion_tokens=0, incomplete=False, offline=False)  # fmt: skip
            return
        slot_key = str(conversation_id)
        if not await acquire_conversation_slot(slot_key, ttl_seconds=int(settings.LLM_TOTAL_TIMEOUT) + 30):
            await in_thread_pool(user_message_refuse)(message_id=user_message.pk, code=ConversationBusy.code)
            raise ConversationBusy()

        record = AnswerRecord()
        saved_id: int | None = None
        finished = False
        pieces: AsyncIterator[str] | None = None
        try:
            yield Accepted(conversation=user_message.conversation, user_message_id=user_message.pk)
            history = recorded.history if request.history is None else request.history
            if lookup is not None and lookup.hit is not None:
                pieces = cached_answer(lookup.hit, record)
            else:
                assert prepared is not None  # retrieval started unless refused or answered from the cache
                preparation = await prepared
                if preparation.rewrite is not None:
                    record.search_rewritten = True
                pieces = _fresh_answer(
                    bot,
                    text,
                    history,
                    preparation.knowledge,
                    record,
                    request.generation,
                    preparation.other_knowledge_language,
                )
            async for piece in pieces:
                if record.first_token_ms is None:
                    record.first_token_ms = int((time.monotonic() - started) * 1000)
                record.text += piece
                yield Delta(piece)
            finished = True
            if lookup is not None and worth_storing(record):
                await cache_store(lookup=lookup, bot=bot, record=record)
        except BaseException as exc:
            if not finished and record.status == MessageStatus.COMPLETE:
                # Stopped before the answer was complete: by its caller (socket closed, task cancelled), by
                # a shutdown, or by an error; the stored status says which.
                record.error_code = record.error_code or _ending(exc)
                stopped = isinstance(exc, (asyncio.CancelledError, GeneratorExit))
                record.status = MessageStatus.INCOMPLETE if record.text or stopped else MessageStatus.FAILED
            raise
        finally:
            if not finished and pieces is not None and hasattr(pieces, "aclose"):
                # Stops the provider's stream now and has it say what was used so far (usage on every ending).
                await asyncio.shield(pieces.aclose())
            record.latency_ms = int((time.monotonic() - started) * 1000)
            if (
                prepared is not None
                and prepared.done()
                and not prepared.cancelled()
                and not prepared.exception()
            ):
                _count_rewrite(record, prepared.result().rewrite)
            record.question_message_id = user_message.pk
            record.question_vector = _computed_vector(query_vector) if query_vector is not None else None
            try:
                saved = await asyncio.shield(
                    in_thread_pool(_store_answer)(
                        conversation_id=conversation_id, organization_id=bot.organization_id, record=record
                    )
                )
                saved_id = saved.pk
            finally:
                await asyncio.shield(release_conversation_slot(slot_key))
            _log_answer(record, saved_id)

    if record.sources:
        yield Sources(record.sources)
    if bot.handoff_after_fallback and record.provider == "fallback_reply" and saved_id is not None:
        yield await in_thread_pool(_escalate_after_fallback)(bot, conversation_id)
    yield Finished(
        message_id=saved_id,
        conversation_id=conversation_id,
        text=record.text,
        sources=record.sources,
        prompt_tokens=record.prompt_tokens,
        completion_tokens=record.completion_tokens,
        incomplete=record.status != MessageStatus.COMPLETE,
        offline=record.offline,
        error_code=record.error_code,
        error_message=record.user_notice,
        hit_token_limit=record.hit_token_limit,
    )
