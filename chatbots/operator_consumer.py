"""The operators' live inbox: ws/admin/inbox/ (protocol in docs/handoff.md).

Opened by the admin's pages for a signed-in member (the admin session's cookie; same-origin only,
config/websocket_edge.py), scoped to the session's active organization. It joins the organization's
handoff group, so new handoffs, visitors' messages and other operators' actions arrive live, and keeps the
member counted online (presence in Redis) while open. Operators take, answer, hand back and close
conversations through it; every action re-checks the membership and reaches only the organization's own
conversations.
"""

from __future__ import annotations

import json
import logging
from types import SimpleNamespace
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from accounts.models import Membership, User
from accounts.selectors import active_membership, membership_for_organization_id
from chatbots.exceptions import ConversationNotFound, InternalError, InvalidFrame
from chatbots.handoff import (
    broadcast_typing,
    conversation_for_operator,
    conversation_summary,
    handoff_close,
    handoff_release,
    handoff_take,
    handoffs_open,
    operator_display_name,
    operator_message_send,
    operator_presence_leave,
    operator_presence_touch,
    organization_group,
)
from chatbots.payloads import message_payload
from chatbots.pipeline.blocking import in_thread_pool
from config.errors import ApplicationError, error_frame
from config.input_rules import loads

CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403
logger = logging.getLogger(__name__)


def _session_membership(scope: dict[str, Any]) -> Membership | None:
    """The member's active membership, as the admin's pages resolve it from the session."""
    request = SimpleNamespace(user=scope.get("user"), session=scope.get("session"))
    return active_membership(request)


def _operator_action(organization_id: int, user: User, action: str, conversation_id: Any, text: str) -> dict:
    """One operator action, run in a worker thread: still a member? the organization's conversation? then
    the service."""
    if membership_for_organization_id(user=user, organization_id=organization_id) is None:
        raise ConversationNotFound()
    conversation = conversation_for_operator(organization_id=organization_id, conversation_id=conversation_id)
    if action == "take":
        conversation = handoff_take(conversation=conversation, operator=user)
    elif action == "release":
        conversation = handoff_release(conversation=conversation, operator=user)
    elif action == "close":
        conversation = handoff_close(conversation=conversation, operator=user)
    elif action == "reply":
        message = operator_message_send(conversation=conversation, operator=user, text=text)
        return {"type": "sent", "conversation_id": str(conversation.pk), "message": message_payload(message)}
    elif action == "typing":
        broadcast_typing(conversation=conversation, who="operator", name=operator_display_name(user))
        return {}
    return {"type": "updated", "conversation": conversation_summary(conversation)}


class OperatorInboxConsumer(AsyncWebsocketConsumer):
    organization_id: int | None = None
    user: User

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        membership = await database_sync_to_async(_session_membership)(self.scope)
        if membership is None:
            await self.close(code=CLOSE_FORBIDDEN)
            return
        self.user = user
        self.organization_id = membership.organization_id
        await self.channel_layer.group_add(organization_group(self.organization_id), self.channel_name)
        await self.accept()
        await database_sync_to_async(operator_presence_touch)(
            organization_id=self.organization_id, channel_name=self.channel_name
        )
        handoffs = await database_sync_to_async(handoffs_open)(organization_id=self.organization_id)
        await self.send_json(
            {
                "type": "ready",
                "operator": operator_display_name(user),
                "operator_id": user.pk,
                "notify_browser": membership.notify_handoff_browser,
                # how often to say "still here" so presence does not expire
                "ping_seconds": max(5, settings.HANDOFF_PRESENCE_TTL_SECONDS // 3),
                "handoffs": handoffs,
            }
        )

    async def disconnect(self, code: int) -> None:
        if self.organization_id is None:
            return
        await self.channel_layer.group_discard(organization_group(self.organization_id), self.channel_name)
        try:
            await database_sync_to_async(operator_presence_leave)(
                organization_id=self.organization_id, channel_name=self.channel_name
            )
        except Exception:  # Redis gone: the entry expires by itself
            logger.warning("presence not cleared for %s", self.channel_name)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        try:
            frame = _parse_frame(text_data)
            await self._dispatch(frame)
        except ApplicationError as exc:
            await self.send_json(error_frame(exc))
        except Exception:
            logger.exception("operator frame failed")
            await self.send_json(error_frame(InternalError()))

    async def _dispatch(self, frame: dict[str, Any]) -> None:
        assert self.organization_id is not None
        action = frame.get("type")
        if action == "ping":
            await database_sync_to_async(operator_presence_touch)(
                organization_id=self.organization_id, channel_name=self.channel_name
            )
            await self.send_json({"type": "pong"})
            return
        if action not in ("take", "release", "close", "reply", "typing"):
            raise InvalidFrame("Unknown frame type; use take, release, close, reply, typing or ping.")
        text = frame.get("text") if isinstance(frame.get("text"), str) else ""
        # The shared pool, not Django's one thread-sensitive thread: operators' replies do not queue behind
        # each other (measured in bench/handoff_latency.py).
        result = await in_thread_pool(_operator_action)(
            self.organization_id, self.user, action, frame.get("conversation_id"), text
        )
        if result:
            await self.send_json(result)

    async def dispatch(self, message: dict[str, Any]) -> None:
        # Channel-layer events go straight to their handler: ``dispatch`` would first close old database
        # connections on Django's one thread-sensitive thread, a hop per event shared by every socket of
        # the process (measured in bench/handoff_latency.py). Socket frames keep the usual path.
        if message.get("type") == "operator.event":
            await self.operator_event(message)
        else:
            await super().dispatch(message)

    async def operator_event(self, event: dict[str, Any]) -> None:
        """An event of the organization's handoffs (chatbots.handoff broadcasts), as it is."""
        frame = {key: value for key, value in event.items() if key != "type"}
        await self.send_json({"type": "event", **frame})

    async def send_json(self, content: dict[str, Any]) -> None:
        await self.send(text_data=json.dumps(content))


def _parse_frame(text_data: str | None) -> dict[str, Any]:
    if text_data is None or len(text_data) > settings.CHAT_MAX_FRAME_BYTES:
        raise InvalidFrame("Frames must be JSON text under the size limit.")
    try:
        frame = loads(text_data)
    except ValueError:
        raise InvalidFrame("Frames must be JSON objects.") from None
    if not isinstance(frame, dict):
        raise InvalidFrame("Frames must be JSON objects.")
    return frame
