"""WebSocket transport of the chat pipeline: ws/chat/<public_id>/ (protocol in docs/chat-api.md)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any
from urllib.parse import parse_qs

import orjson
from asgiref.sync import sync_to_async
from channels.consumer import get_handler_name
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.layers import get_channel_layer
from django.conf import settings

from chatbots.appearance import widget_appearance
from chatbots.exceptions import (
    BotNotFound,
    BotPaused,
    ConversationBusy,
    ConversationNotFound,
    IdentityRefused,
    InternalError,
    InvalidFrame,
    InvalidMessage,
    LLMUnavailableError,
    MessageNotFound,
    OriginNotAllowed,
    RateLimited,
)
from chatbots.handoff import broadcast_typing, conversation_group, handoff_state
from chatbots.identity import (
    VerifiedIdentity,
    conversation_claim_for_identity,
    visitor_attributes_for,
    visitor_identity_verify,
    widget_visitor_id,
)
from chatbots.leads import lead_create, lead_link_conversation
from chatbots.models import HANDOFF_ACTIVE, Bot, Channel, Conversation, LeadReason
from chatbots.origins import socket_origin_allowed
from chatbots.payloads import message_payload
from chatbots.pipeline import (
    Accepted,
    ChatRequest,
    Delta,
    Finished,
    HandoffUpdate,
    Sources,
    answer_message,
    validate_visitor_id,
    visitor_language,
)
from chatbots.pipeline.ratelimit import Limit, check_rate_limits
from chatbots.selectors import bot_get_public_cached, conversation_get_for_visitor, conversation_messages
from chatbots.services import message_feedback_set
from config.client_ip import scope_client_ip
from config.db import checked_connection
from config.errors import ApplicationError, error_frame
from config.input_rules import BadInput, check, loads

CLOSE_BAD_REQUEST = 4400
CLOSE_NOT_FOUND = 4404
CLOSE_FORBIDDEN = 4403
CLOSE_CODES = {
    BadInput: CLOSE_BAD_REQUEST,
    OriginNotAllowed: CLOSE_FORBIDDEN,
    IdentityRefused: CLOSE_FORBIDDEN,
}
logger = logging.getLogger(__name__)


def _header(scope: dict[str, Any], name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return value.decode("latin-1")
    return None


class ChatConsumer(AsyncWebsocketConsumer):
    # Chat sockets join no groups: each answer streams straight from the pipeline task, so a socket needs
    # no channel-layer subscription (no Redis round trips per connection, which matters at 1,000 sockets).
    # Only a conversation handed to a person subscribes (``_join_handoff``): operators' replies arrive
    # over the channel layer from whichever web process the operator is connected to.
    channel_layer_alias = "no-channel-layer"
    handoff_listener: asyncio.Task[None] | None = None
    handoff_status: str = ""

    bot: Bot
    conversation: Conversation | None
    visitor_id: str
    language: str = ""
    answer_task: asyncio.Task[None] | None = None
    identity: VerifiedIdentity | None = None  # the signed-in user the page proved (chatbots.identity)
    pending_lead_id: int | None = None  # a lead left before the first message: joins its conversation

    async def connect(self) -> None:
        query = parse_qs(self.scope.get("query_string", b"").decode("latin-1"))
        try:
            self.visitor_id = validate_visitor_id((query.get("visitor") or [""])[0])
        except InvalidMessage:
            self.visitor_id = ""  # anonymous: a new conversation, nothing resumed
        self.visitor_id = widget_visitor_id(self.visitor_id)  # "user:…" only with a valid user_hash
        self.conversation = None
        # The widget names the visitor's browser language; a socket without it, the handshake's header.
        self.language = (query.get("lang") or [""])[0] or _header(self.scope, b"accept-language") or ""
        # Accept first so a refusal can say why in a frame the widget understands, then close.
        await self.accept()
        try:
            check(query)
            self.bot = await bot_get_public_cached(public_id=self.scope["url_route"]["kwargs"]["public_id"])
            if not socket_origin_allowed(
                bot=self.bot, origin=_header(self.scope, b"origin"), host=_header(self.scope, b"host")
            ):
                raise OriginNotAllowed()
            self.identity = visitor_identity_verify(
                bot=self.bot,
                user_id=(query.get("user_id") or [""])[0],
                user_hash=(query.get("user_hash") or [""])[0],
            )
            anonymous_visitor_id = self.visitor_id
            if self.identity is not None:
                self.visitor_id = self.identity.visitor_id
            conversation_id = (query.get("conversation") or [""])[0]
            if conversation_id and self.identity is not None:
                self.conversation = await sync_to_async(checked_connection(conversation_claim_for_identity))(
                    bot=self.bot, conversation_id=conversation_id, anonymous_visitor_id=anonymous_visitor_id,
                    identity=self.identity,
                )  # fmt: skip
            elif conversation_id:
                self.conversation = await sync_to_async(checked_connection(conversation_get_for_visitor))(
                    bot=self.bot, conversation_id=conversation_id, visitor_id=self.visitor_id
                )
        except (BadInput, BotNotFound, ConversationNotFound, OriginNotAllowed, IdentityRefused) as exc:
            await self.send_error(exc)
            await self.close(code=CLOSE_CODES.get(type(exc), CLOSE_NOT_FOUND))
            return
        ready: dict[str, Any] = {
            "type": "ready",
            "conversation_id": self._conversation_id(),
            "identified": self.identity is not None,
            "bot": widget_appearance(self.bot).as_dict(),
        }
        if self.conversation is not None and self.conversation.handoff_status:
            state = await sync_to_async(handoff_state)(conversation=self.conversation)
            ready["handoff"] = state.as_dict()
            self.handoff_status = state.status
            if state.status in HANDOFF_ACTIVE:
                await self._join_handoff()
        await self.send_json(ready)
        if not self.bot.is_active:
            await self.send_error(BotPaused())

    async def disconnect(self, code: int) -> None:
        # The visitor left: stop the answer; the pipeline stores what was streamed, marked incomplete.
        if self.answer_task and not self.answer_task.done():
            self.answer_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.answer_task
        if self.handoff_listener is not None:
            self.handoff_listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.handoff_listener
            if self.conversation is not None:
                with contextlib.suppress(Exception):  # Redis gone: the group entry expires by itself
                    await self.channel_layer.group_discard(
                        conversation_group(self.conversation.pk), self.channel_name
                    )

    # --- human handoff: a person answers (chatbots.handoff) ------------------------------------------
    async def _join_handoff(self) -> None:
        """Subscribe this socket to its conversation's handoff group, once: only now does it need a channel
        of its own on the channel layer."""
        if self.handoff_listener is not None or self.conversation is None:
            return
        self.channel_layer = get_channel_layer()
        self.channel_name = await self.channel_layer.new_channel()
        await self.channel_layer.group_add(conversation_group(self.conversation.pk), self.channel_name)
        self.handoff_listener = asyncio.create_task(self._listen_handoff())

    async def _listen_handoff(self) -> None:
        while True:
            event = await self.channel_layer.receive(self.channel_name)
            # The handler by name, not ``dispatch``: that first closes old database connections on Django's
            # one thread-sensitive thread, a hop per event that these handlers (no database) do not need.
            handler = getattr(self, get_handler_name(event), None)
            try:
                if handler is None:
                    raise ValueError(f"no handler for {event.get('type')}")
                await handler(event)
            except Exception:
                logger.exception("handoff event %s failed", event.get("type"))

    async def visitor_handoff(self, event: dict[str, Any]) -> None:
        """The conversation changed hands (taken, handed back to the bot, closed)."""
        self.handoff_status = event["status"]
        await self.send_json(
            {"type": "handoff", "status": event["status"], "operator": event["operator_name"],
             "available": event["available"]}
        )  # fmt: skip

    async def visitor_operator_message(self, event: dict[str, Any]) -> None:
        await self.send_json(
            {"type": "operator_message", "id": event["id"], "text": event["text"], "operator": event["operator"],
             "created_at": event["created_at"]}
        )  # fmt: skip

    async def visitor_typing(self, event: dict[str, Any]) -> None:
        await self.send_json({"type": "typing", "operator": event["name"]})

    async def _send_handoff(self, update: HandoffUpdate) -> None:
        self.handoff_status = update.status
        await self._join_handoff()
        await self.send_json(
            {"type": "handoff", "status": update.status, "operator": update.operator_name,
             "available": update.available}
        )  # fmt: skip

    async def on_typing(self, frame: dict[str, Any]) -> None:
        """The visitor is typing: operators see it while the conversation is with a person."""
        if self.conversation is not None and self.handoff_status in HANDOFF_ACTIVE:
            await sync_to_async(broadcast_typing)(conversation=self.conversation, who="visitor")

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        try:
            await self._dispatch(_parse_frame(text_data))
        except ApplicationError as exc:
            await self.send_error(exc)
        except Exception:
            # One bad frame must not cost the visitor the socket (an exception here closes it): say so
            # and keep listening.
            logger.exception("chat frame failed on %s", self.scope["path"])
            await self.send_error(InternalError())

    async def _dispatch(self, frame: dict[str, Any]) -> None:
        frame_type = frame.get("type")
        handler = {
            "message": self.on_message,
            "feedback": self.on_feedback,
            "ping": self.on_ping,
            "history": self.on_history,
            "typing": self.on_typing,
            "lead": self.on_lead,
        }.get(frame_type if isinstance(frame_type, str) else "")
        if handler is None:
            raise InvalidFrame("Unknown frame type; use message, feedback, lead, history, typing or ping.")
        await handler(frame)

    async def on_ping(self, frame: dict[str, Any]) -> None:
        await self.send_json({"type": "pong"})

    async def on_history(self, frame: dict[str, Any]) -> None:
        messages = []
        if self.conversation is not None:
            messages = await sync_to_async(checked_connection(_transcript))(self.conversation)
        await self.send_json(
            {"type": "history", "conversation_id": self._conversation_id(), "messages": messages}
        )

    async def on_feedback(self, frame: dict[str, Any]) -> None:
        if self.conversation is None or not isinstance(frame.get("message_id"), int):
            raise MessageNotFound()
        value = frame.get("value") or ""
        comment = frame.get("comment") or ""
        if not isinstance(value, str) or not isinstance(comment, str):
            raise InvalidFrame("A feedback frame's value and comment are text.")
        await sync_to_async(checked_connection(message_feedback_set))(
            conversation=self.conversation, message_id=frame["message_id"], value=value, comment=comment
        )
        await self.send_json(
            {"type": "feedback_saved", "message_id": frame["message_id"], "value": value or None}
        )
        if value == "down" and self.bot.handoff_after_thumbs_down:
            state = await sync_to_async(_fresh_handoff_state)(self.conversation)
            if state.status in HANDOFF_ACTIVE:
                await self._send_handoff(
                    HandoffUpdate(
                        status=state.status, available=state.available, operator_name=state.operator_name
                    )
                )

    async def on_lead(self, frame: dict[str, Any]) -> None:
        """The lead form: rate-limited per visitor and address like messages, validated by the service."""
        client_ip = scope_client_ip(self.scope)
        sender = self.visitor_id or client_ip or "anonymous"
        limits = [Limit(f"lead:{self.bot.pk}:{sender}", settings.LEAD_RATE_LIMIT_VISITOR)]
        if client_ip:
            limits.append(Limit(f"leadip:{self.bot.pk}:{client_ip}", settings.LEAD_RATE_LIMIT_IP))
        try:
            await check_rate_limits(limits, bot_id=self.bot.pk, count_refusals=False)
        except RateLimited as exc:
            raise RateLimited(
                f"This form was sent too often. Please try again in {exc.retry_after} seconds.",
                retry_after=exc.retry_after,
            ) from None
        lead = await sync_to_async(lead_create)(
            bot=self.bot, email=frame.get("email"), name=frame.get("name"), message=frame.get("message"),
            reason=frame.get("reason") or LeadReason.VISITOR, consent_given=frame.get("consent"),
            consent_text=frame.get("consent_text"), visitor_id=self.visitor_id, conversation=self.conversation,
            language=visitor_language(self.language),
        )  # fmt: skip
        if self.conversation is None:
            self.pending_lead_id = lead.pk
        await self.send_json({"type": "lead_saved", "conversation_id": self._conversation_id()})

    async def on_message(self, frame: dict[str, Any]) -> None:
        if self.answer_task and not self.answer_task.done():
            raise ConversationBusy()
        request = ChatRequest(
            bot=self.bot,
            text=frame.get("text"),  # validated by the pipeline
            channel=Channel.WIDGET,
            visitor_id=self.visitor_id,
            conversation_id=str(self.conversation.pk) if self.conversation else None,
            client_ip=scope_client_ip(self.scope),
            visitor_attributes=visitor_attributes_for(
                bot=self.bot,
                attributes=frame.get("attributes") if isinstance(frame.get("attributes"), dict) else None,
                identity=self.identity,
            ),
            language=self.language,
            asks_for_person=frame.get("handoff") is True,
        )
        self.answer_task = asyncio.create_task(self._answer(request))

    async def _answer(self, request: ChatRequest) -> None:
        try:
            async for event in answer_message(request):
                if isinstance(event, Delta):
                    # The per-token path: one small document, serialized without the generic encoder.
                    await self.send(text_data=orjson.dumps({"type": "delta", "text": event.text}).decode())
                elif isinstance(event, Accepted):
                    # The id goes out before the first token: a visitor whose connection drops during the
                    # very first answer reconnects into this conversation instead of starting another.
                    self.conversation = event.conversation
                    await self.send_json(
                        {
                            "type": "accepted",
                            "conversation_id": str(event.conversation_id),
                            "user_message_id": event.user_message_id,
                        }
                    )
                    if self.pending_lead_id is not None:
                        lead_id, self.pending_lead_id = self.pending_lead_id, None
                        await sync_to_async(lead_link_conversation)(
                            lead_id=lead_id, conversation=self.conversation
                        )
                elif isinstance(event, Sources):
                    await self.send_json({"type": "sources", "sources": event.sources})
                elif isinstance(event, HandoffUpdate):
                    await self._send_handoff(event)
                elif isinstance(event, Finished):
                    await self._send_done(event)
        except ApplicationError as exc:
            await self.send_error(exc)
        except Exception:
            # A bug must not leave the visitor waiting: say so and end the answer (what streamed so far
            # is already stored by the pipeline, marked incomplete).
            logger.exception("chat answer failed for bot %s", self.bot.public_id)
            await self.send_error(InternalError())
            await self._send_done(Finished.failed(self.conversation.pk if self.conversation else None))

    async def _send_done(self, event: Finished) -> None:
        if event.provider_unavailable:
            await self.send_error(LLMUnavailableError(event.error_message))
        await self.send_json({"type": "done", **event.done_payload()})

    def _conversation_id(self) -> str | None:
        return str(self.conversation.pk) if self.conversation else None

    async def send_json(self, content: dict[str, Any]) -> None:
        await self.send(text_data=json.dumps(content))

    async def send_error(self, exc: ApplicationError) -> None:
        await self.send_json(error_frame(exc))


def _parse_frame(text_data: str | None) -> dict[str, Any]:
    # "surrogatepass": a lone surrogate is measured here and refused by ``loads`` with a clear message.
    if text_data is None or len(text_data.encode("utf-8", "surrogatepass")) > settings.CHAT_MAX_FRAME_BYTES:
        raise InvalidFrame("Frames must be JSON text under the size limit.")
    try:
        frame = loads(text_data)
    except ValueError:
        raise InvalidFrame("Frames must be JSON objects.") from None
    if not isinstance(frame, dict):
        raise InvalidFrame("Frames must be JSON objects.")
    return frame


def _fresh_handoff_state(conversation: Conversation):
    conversation.refresh_from_db(fields=["handoff_status", "handoff_operator"])
    return handoff_state(conversation=conversation)


def _transcript(conversation: Conversation) -> list[dict[str, Any]]:
    return [message_payload(message) for message in conversation_messages(conversation=conversation)]
