"""WebSocket transport of the chat pipeline: ws/chat/<public_id>/ (protocol in docs/chat-api.md)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from typing import Any
from urllib.parse import parse_qs

from asgiref.sync import sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from chatbots.models import Bot, Channel, Conversation
from chatbots.origins import socket_origin_allowed
from chatbots.pipeline import (
    Accepted,
    ChatError,
    ChatRequest,
    Delta,
    Finished,
    Sources,
    answer_message,
    store,
)
from chatbots.pipeline.errors import BotNotFound, ConversationNotFound, MessageNotFound, OriginNotAllowed
from chatbots.selectors import bot_get_public_cached, bot_widget_config

VISITOR_ID = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
CLOSE_NOT_FOUND = 4404
CLOSE_FORBIDDEN = 4403
logger = logging.getLogger(__name__)


def _header(scope: dict[str, Any], name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return value.decode("latin-1")
    return None


class ChatConsumer(AsyncWebsocketConsumer):
    # Chat sockets join no groups: each answer streams straight from the pipeline task, so a socket needs
    # no channel-layer subscription (no Redis round trips per connection, which matters at 1,000 sockets).
    channel_layer_alias = "no-channel-layer"

    bot: Bot
    conversation: Conversation | None
    visitor_id: str
    answer_task: asyncio.Task[None] | None = None

    async def connect(self) -> None:
        query = parse_qs(self.scope.get("query_string", b"").decode("latin-1"))
        visitor = (query.get("visitor") or [""])[0]
        self.visitor_id = visitor if VISITOR_ID.match(visitor) else ""
        self.conversation = None
        # Accept first so a refusal can say why in a frame the widget understands, then close.
        await self.accept()
        try:
            self.bot = await bot_get_public_cached(public_id=self.scope["url_route"]["kwargs"]["public_id"])
            if not socket_origin_allowed(
                bot=self.bot, origin=_header(self.scope, b"origin"), host=_header(self.scope, b"host")
            ):
                raise OriginNotAllowed()
            conversation_id = (query.get("conversation") or [""])[0]
            if conversation_id:
                self.conversation = await sync_to_async(store.conversation_get)(
                    bot=self.bot, conversation_id=conversation_id, visitor_id=self.visitor_id
                )
        except (BotNotFound, ConversationNotFound, OriginNotAllowed) as exc:
            await self.send_error(exc)
            await self.close(code=CLOSE_FORBIDDEN if isinstance(exc, OriginNotAllowed) else CLOSE_NOT_FOUND)
            return
        await self.send_json(
            {
                "type": "ready",
                "conversation_id": str(self.conversation.pk) if self.conversation else None,
                "greeting": self.bot.greeting,
                "suggested_questions": list(self.bot.suggested_questions or []),
                "bot": bot_widget_config(self.bot),
            }
        )
        if self.bot.status != "active":
            await self.send_json(
                {"type": "error", "code": "bot_paused", "message": "This chatbot is paused."}
            )

    async def disconnect(self, code: int) -> None:
        # The visitor left: stop the answer; the pipeline stores what was streamed, marked incomplete.
        if self.answer_task and not self.answer_task.done():
            self.answer_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.answer_task

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if text_data is None or len(text_data.encode()) > settings.CHAT_MAX_FRAME_BYTES:
            await self._send_code("invalid_frame", "Frames must be JSON text under the size limit.")
            return
        try:
            frame = json.loads(text_data)
        except ValueError:
            await self._send_code("invalid_frame", "Frames must be JSON objects.")
            return
        kind = frame.get("type") if isinstance(frame, dict) else None
        handler = {
            "message": self.on_message,
            "feedback": self.on_feedback,
            "ping": self.on_ping,
            "history": self.on_history,
        }.get(kind)  # type: ignore[arg-type]
        if handler is None:
            await self._send_code(
                "invalid_frame", "Unknown frame type; use message, feedback, history or ping."
            )
            return
        try:
            await handler(frame)
        except ChatError as exc:
            await self.send_error(exc)

    async def on_ping(self, frame: dict[str, Any]) -> None:
        await self.send_json({"type": "pong"})

    async def on_history(self, frame: dict[str, Any]) -> None:
        messages = []
        if self.conversation is not None:
            messages = await sync_to_async(store.conversation_history)(conversation=self.conversation)
        await self.send_json(
            {"type": "history", "conversation_id": self._conversation_id(), "messages": messages}
        )

    async def on_feedback(self, frame: dict[str, Any]) -> None:
        if self.conversation is None or not isinstance(frame.get("message_id"), int):
            raise MessageNotFound()
        value = frame.get("value") or ""
        comment = frame.get("comment") or ""
        await sync_to_async(store.feedback_record)(
            conversation=self.conversation, message_id=frame["message_id"], value=value, comment=str(comment)
        )
        await self.send_json(
            {"type": "feedback_saved", "message_id": frame["message_id"], "value": value or None}
        )

    async def on_message(self, frame: dict[str, Any]) -> None:
        if self.answer_task and not self.answer_task.done():
            await self._send_code("busy", "Please wait until the current answer has finished.")
            return
        request = ChatRequest(
            bot=self.bot,
            text=frame.get("text"),  # validated by the pipeline
            channel=Channel.WIDGET,
            visitor_id=self.visitor_id,
            conversation_id=str(self.conversation.pk) if self.conversation else None,
            client_ip=(self.scope.get("client") or [""])[0] or "",
            visitor_attributes=frame.get("attributes") if isinstance(frame.get("attributes"), dict) else None,
        )
        self.answer_task = asyncio.create_task(self._answer(request))

    async def _answer(self, request: ChatRequest) -> None:
        try:
            async for event in answer_message(request):
                if isinstance(event, Delta):
                    await self.send_json({"type": "delta", "text": event.text})
                elif isinstance(event, Accepted):
                    self.conversation = event.conversation
                elif isinstance(event, Sources):
                    await self.send_json({"type": "sources", "sources": event.sources})
                elif isinstance(event, Finished):
                    if event.error_code == "llm_unavailable":
                        await self._send_code("llm_unavailable", event.error_message)
                    await self.send_json(
                        {
                            "type": "done",
                            "message_id": event.message_id,
                            "conversation_id": str(event.conversation_id),
                            "usage": {
                                "prompt_tokens": event.prompt_tokens,
                                "completion_tokens": event.completion_tokens,
                            },
                            "incomplete": event.incomplete,
                            "offline": event.offline,
                        }
                    )
        except ChatError as exc:
            await self.send_error(exc)
        except Exception:
            # A bug must not leave the visitor waiting: say so and end the answer (what streamed so far
            # is already stored by the pipeline, marked incomplete).
            logger.exception("chat answer failed for bot %s", self.bot.public_id)
            await self._send_code("internal_error", "Something went wrong on our side. Please try again.")
            await self.send_json(
                {"type": "done", "message_id": None, "conversation_id": self._conversation_id(),
                 "usage": {"prompt_tokens": 0, "completion_tokens": 0}, "incomplete": True, "offline": False}
            )  # fmt: skip

    def _conversation_id(self) -> str | None:
        return str(self.conversation.pk) if self.conversation else None

    async def send_json(self, content: dict[str, Any]) -> None:
        await self.send(text_data=json.dumps(content))

    async def send_error(self, exc: ChatError) -> None:
        await self._send_code(exc.code, exc.message, exc.retry_after)

    async def _send_code(self, code: str, message: str, retry_after: int | None = None) -> None:
        frame: dict[str, Any] = {"type": "error", "code": code, "message": message}
        if retry_after is not None:
            frame["retry_after"] = retry_after
        await self.send_json(frame)
