"""Human handoff: a visitor's conversation handed from the bot to a person of the organization and back.

States (``Conversation.handoff_status``): "" (the bot answers) → waiting (asked for a person) → taken (an
operator answers) → "" again (handed back to the bot) or closed (the operator ended it; the bot answers a
later message). While waiting or taken the chat pipeline stores the visitor's messages and relays them to
the operators instead of answering (chatbots.pipeline.core), whatever the transport.

Every transition is one conditional UPDATE, so two operators taking the same conversation at once cannot
both win. Events reach the people concerned over the Redis channel layer after the transaction commits
(``broadcast_*``): the organization's operators (``organization_group``, the admin inbox socket,
chatbots.operator_consumer) and the visitor's open widget socket (``conversation_group``,
chatbots.consumers).

Service functions for other features to hook into (webhooks): ``handoff_request``, ``handoff_take``,
``handoff_release``, ``handoff_close``, ``operator_message_send``.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import asdict, dataclass
from typing import Any

import redis
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from accounts.models import Organization, User
from accounts.selectors import organization_is_open
from chatbots import webhook_events
from chatbots.conversation_summary import summary_message_added
from chatbots.exceptions import ConversationNotFound, HandoffNotAllowed, InvalidMessage
from chatbots.models import HANDOFF_ACTIVE, Conversation, HandoffStatus, Message, MessageRole, MessageStatus
from config.redis_clients import sync_redis_client
from webhooks.models import EventType

logger = logging.getLogger(__name__)


class HandoffReason:
    VISITOR = "visitor"  # the header's button or a phrase ("talk to a person")
    FALLBACK = "fallback"  # the bot gave its fallback reply and the bot escalates then
    THUMBS_DOWN = "thumbs_down"  # the visitor rated an answer down and the bot escalates then


# --- channel groups and events -----------------------------------------------------------------------
def organization_group(organization_id: int) -> str:
    """The organization's operators: every admin inbox socket of its members."""
    return f"handoff.org.{organization_id}"


def conversation_group(conversation_id: uuid.UUID | str) -> str:
    """The visitor's open widget socket(s) of one conversation."""
    return f"handoff.conversation.{conversation_id}"


def operator_display_name(user: User | None) -> str:
    """What the visitor sees of an operator: the full name, else the e-mail's local part (never the
    address)."""
    if user is None:
        return ""
    return (user.full_name or "").strip() or user.email.split("@")[0]


@dataclass(frozen=True)
class HandoffState:
    """A conversation's handoff as the widget and the operators see it."""

    conversation_id: str
    status: str
    operator_name: str = ""
    available: bool = True  # someone can answer now (an operator online, inside opening hours)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def conversation_summary(conversation: Conversation, *, last_text: str = "") -> dict[str, Any]:
    """A conversation in the operators' live list (admin inbox socket)."""
    return {
        "id": str(conversation.pk),
        "url": reverse("admin:chatbots_conversation_change", args=[conversation.pk]),
        "bot": conversation.bot.name if conversation.bot_id else "",
        "visitor": conversation.visitor_label,
        "status": conversation.handoff_status,
        "reason": conversation.handoff_reason,
        "operator": operator_display_name(conversation.handoff_operator),
        "operator_id": conversation.handoff_operator_id,
        "requested_at": conversation.handoff_requested_at.isoformat()
        if conversation.handoff_requested_at
        else None,
        "last_text": last_text[:300],
    }


def _send_now(group: str, event: dict[str, Any]) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.group_send)(group, event)
    except Exception:  # a broken Redis must not undo a stored reply; the page shows it on reload
        logger.exception("handoff event to %s not sent", group)


def broadcast_on_commit(group: str, event: dict[str, Any]) -> None:
    """Send ``event`` to ``group`` once the surrounding transaction commits (nothing when it rolls back)."""
    transaction.on_commit(lambda: _send_now(group, event))


def _broadcast_status(conversation: Conversation, event_name: str) -> None:
    state = handoff_state(conversation=conversation, check_availability=False)
    broadcast_on_commit(
        organization_group(conversation.organization_id),
        {"type": "operator.event", "event": event_name, "conversation": conversation_summary(conversation)},
    )
    broadcast_on_commit(conversation_group(conversation.pk), {"type": "visitor.handoff", **state.as_dict()})


def broadcast_typing(*, conversation: Conversation, who: str, name: str = "") -> None:
    """Someone is typing: the operator (to the visitor's socket) or the visitor (to the operators)."""
    if who == "operator":
        _send_now(conversation_group(conversation.pk), {"type": "visitor.typing", "name": name})
    else:
        _send_now(
            organization_group(conversation.organization_id),
            {
                "type": "operator.event",
                "event": "visitor.typing",
                "conversation": {"id": str(conversation.pk)},
            },
        )


# --- presence: who has the admin inbox open ------------------------------------------------------------


def _presence() -> redis.Redis:
    return sync_redis_client(settings.REDIS_URL)  # survives a Redis restart (config/redis_clients.py)


def _presence_key(organization_id: int) -> str:
    return f"parlor:handoff:online:{organization_id}"


def operator_presence_touch(*, organization_id: int, channel_name: str) -> None:
    """An admin socket says it is still open: it counts as online until ``HANDOFF_PRESENCE_TTL_SECONDS``
    from now. A sorted set of sockets scored by expiry, so a crashed web process is forgotten by itself."""
    ttl = settings.HANDOFF_PRESENCE_TTL_SECONDS
    key = _presence_key(organization_id)
    pipe = _presence().pipeline()
    pipe.zadd(key, {channel_name: time.time() + ttl})
    pipe.expire(key, ttl * 2)
    pipe.execute()


def operator_presence_leave(*, organization_id: int, channel_name: str) -> None:
    _presence().zrem(_presence_key(organization_id), channel_name)


def operators_online(*, organization_id: int) -> int:
    """How many admin inbox sockets of the organization are open (presence not yet expired)."""
    key = _presence_key(organization_id)
    pipe = _presence().pipeline()
    pipe.zremrangebyscore(key, "-inf", time.time())
    pipe.zcard(key)
    return int(pipe.execute()[1])


def someone_available(*, organization: Organization) -> bool:
    """A person can answer now: inside opening hours and at least one operator has the admin open."""
    if not organization_is_open(organization=organization):
        return False
    try:
        return operators_online(organization_id=organization.pk) > 0
    except redis.RedisError:
        logger.warning("presence unknown (Redis unavailable): nobody counted online")
        return False


# --- reads ---------------------------------------------------------------------------------------------
def handoff_state(*, conversation: Conversation, check_availability: bool = True) -> HandoffState:
    available = True
    if check_availability and conversation.handoff_status == HandoffStatus.WAITING:
        available = someone_available(organization=conversation.organization)
    return HandoffState(
        conversation_id=str(conversation.pk),
        status=conversation.handoff_status,
        operator_name=operator_display_name(conversation.handoff_operator),
        available=available,
    )


def conversation_for_operator(*, organization_id: int, conversation_id: Any) -> Conversation:
    """One of the organization's conversations (another organization's, or a bad id, is not found)."""
    try:
        return Conversation.objects.select_related("bot", "organization", "handoff_operator").get(
            pk=conversation_id, organization_id=organization_id
        )
    except (Conversation.DoesNotExist, ValueError, TypeError, ValidationError):
        raise ConversationNotFound() from None


def handoffs_open(*, organization_id: int, limit: int = 50) -> list[dict[str, Any]]:
    """The organization's conversations waiting for or with a person, oldest request first."""
    conversations = (
        Conversation.objects.filter(organization_id=organization_id, handoff_status__in=HANDOFF_ACTIVE)
        .select_related("bot", "handoff_operator")
        .order_by("handoff_requested_at")[:limit]
    )
    return [conversation_summary(c) for c in conversations]


# --- transitions -----------------------------------------------------------------------------------------
def _reload(conversation_id: Any) -> Conversation:
    return Conversation.objects.select_related("bot", "organization", "handoff_operator").get(
        pk=conversation_id
    )


@transaction.atomic
def handoff_request(*, conversation: Conversation, reason: str = HandoffReason.VISITOR) -> HandoffState:
    """The visitor asks for a person (or the bot escalates): the conversation waits for an operator.

    Asking again while waiting or taken changes nothing. Operators hear of it at once (admin socket,
    e-mail to those who want one); ``available`` says whether anyone can answer now."""
    updated = (
        Conversation.objects.filter(pk=conversation.pk)
        .exclude(handoff_status__in=HANDOFF_ACTIVE)
        .update(
            handoff_status=HandoffStatus.WAITING,
            handoff_reason=reason,
            handoff_operator=None,
            handoff_requested_at=timezone.now(),
            handoff_taken_at=None,
            handoff_ended_at=None,
        )
    )
    current = _reload(conversation.pk)
    if updated:
        from chatbots.tasks import handoff_notify_task  # tasks import this module's neighbours

        last = (
            Message.objects.filter(conversation_id=current.pk, role=MessageRole.USER)
            .order_by("-created_at", "-id")
            .values_list("text", flat=True)
            .first()
        )
        broadcast_on_commit(
            organization_group(current.organization_id),
            {
                "type": "operator.event",
                "event": "handoff.requested",
                "conversation": conversation_summary(current, last_text=last or ""),
            },
        )
        transaction.on_commit(lambda: handoff_notify_task.delay(str(current.pk)))
        webhook_events.handoff_changed(conversation=current, event_type=EventType.HANDOFF_REQUESTED)
    return handoff_state(conversation=current)


@transaction.atomic
def handoff_take(*, conversation: Conversation, operator: User) -> Conversation:
    """An operator takes a waiting conversation. Of two taking at once exactly one wins; the other gets
    ``HandoffNotAllowed``. Taking one's own taken conversation again is a no-op."""
    updated = Conversation.objects.filter(pk=conversation.pk, handoff_status=HandoffStatus.WAITING).update(
        handoff_status=HandoffStatus.TAKEN, handoff_operator=operator, handoff_taken_at=timezone.now()
    )
    current = _reload(conversation.pk)
    if not updated:
        if current.handoff_status == HandoffStatus.TAKEN and current.handoff_operator_id == operator.pk:
            return current
        taken_by = operator_display_name(current.handoff_operator)
        raise HandoffNotAllowed(
            f"{taken_by} has already taken this conversation."
            if current.handoff_status == HandoffStatus.TAKEN
            else "This conversation is not waiting for a person."
        )
    _broadcast_status(current, "handoff.taken")
    webhook_events.handoff_changed(conversation=current, event_type=EventType.HANDOFF_TAKEN)
    return current


def _end(conversation: Conversation, status: str, event_name: str) -> Conversation:
    updated = Conversation.objects.filter(pk=conversation.pk, handoff_status__in=HANDOFF_ACTIVE).update(
        handoff_status=status, handoff_ended_at=timezone.now()
    )
    current = _reload(conversation.pk)
    if not updated:
        raise HandoffNotAllowed("This conversation is not with a person.")
    _broadcast_status(current, event_name)
    return current


@transaction.atomic
def handoff_release(*, conversation: Conversation, operator: User) -> Conversation:
    """Hand the conversation back to the bot: it answers the visitor's next message again."""
    return _end(conversation, HandoffStatus.NONE, "handoff.released")


@transaction.atomic
def handoff_close(*, conversation: Conversation, operator: User) -> Conversation:
    """The operator ends the conversation; a later message from the visitor is answered by the bot."""
    return _end(conversation, HandoffStatus.CLOSED, "handoff.closed")


@transaction.atomic
def operator_message_send(*, conversation: Conversation, operator: User, text: str) -> Message:
    """An operator's reply, stored as a message (role "operator", in transcripts, exports and erasure) and
    sent to the visitor's open widget at once. Only the operator who took the conversation replies."""
    text = (text or "").strip() if isinstance(text, str) else ""
    if not text:
        raise InvalidMessage("Please type a message.")
    if len(text) > settings.CHAT_MAX_MESSAGE_CHARS:
        raise InvalidMessage(
            f"The message is too long (at most {settings.CHAT_MAX_MESSAGE_CHARS} characters)."
        )
    current = Conversation.objects.select_for_update().get(pk=conversation.pk)
    if current.handoff_status != HandoffStatus.TAKEN or current.handoff_operator_id != operator.pk:
        raise HandoffNotAllowed("Take the conversation before replying.")
    name = operator_display_name(operator)
    message = Message.objects.create(
        organization_id=current.organization_id,
        conversation=current,
        role=MessageRole.OPERATOR,
        operator=operator,
        operator_name=name,
        text=text,
        status=MessageStatus.COMPLETE,
    )
    summary_message_added(
        conversation_id=current.pk, role=MessageRole.OPERATOR, text=text, status=MessageStatus.COMPLETE
    )
    webhook_events.message_created(message=message)
    payload = {
        "id": message.pk,
        "conversation_id": str(current.pk),
        "text": text,
        "operator": name,
        "created_at": message.created_at.isoformat(),
    }
    broadcast_on_commit(conversation_group(current.pk), {"type": "visitor.operator_message", **payload})
    broadcast_on_commit(
        organization_group(current.organization_id),
        {"type": "operator.event", "event": "operator.message", "conversation": {"id": str(current.pk)},
         "message": payload},
    )  # fmt: skip
    return message


def handoff_visitor_message_relay(*, message: Message) -> None:
    """A visitor's message in a handed-over conversation goes to the operators instead of the bot."""
    broadcast_on_commit(
        organization_group(message.organization_id),
        {
            "type": "operator.event",
            "event": "visitor.message",
            "conversation": {"id": str(message.conversation_id)},
            "message": {"id": message.pk, "text": message.text, "created_at": message.created_at.isoformat()},
        },
    )
