from __future__ import annotations

import secrets
import uuid

from django.db import models


def new_public_id() -> str:
    """Unguessable id that the widget and public URLs use instead of the primary key."""
    return "bot_" + secrets.token_urlsafe(16)


class Bot(models.Model):
    organization = models.ForeignKey("accounts.Organization", on_delete=models.CASCADE, related_name="bots")
    name = models.CharField(max_length=120)
    public_id = models.CharField(max_length=40, unique=True, default=new_public_id, editable=False)
    system_prompt = models.TextField(
        blank=True, default="You are a helpful assistant. Answer from the provided knowledge."
    )
    greeting = models.CharField(max_length=500, blank=True, default="Hi! How can I help you today?")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Channel(models.TextChoices):
    WIDGET = "widget", "Widget / chat page"
    API = "api", "REST API"
    OPENAI = "openai", "OpenAI-compatible API"


class Conversation(models.Model):
    """A visitor's (or API client's) thread with one bot; resumable by its unguessable id."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey("accounts.Organization", on_delete=models.CASCADE, related_name="+")
    bot = models.ForeignKey(Bot, on_delete=models.CASCADE, related_name="conversations")
    channel = models.CharField(max_length=10, choices=Channel.choices, default=Channel.WIDGET)
    visitor_id = models.CharField(max_length=64, blank=True, db_index=True)
    visitor_attributes = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_message_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-last_message_at"]
        indexes = [models.Index(fields=["bot", "-last_message_at"], name="conversation_bot_recent")]

    def __str__(self) -> str:
        return f"{self.bot} · {self.created_at:%Y-%m-%d %H:%M}"


class MessageRole(models.TextChoices):
    USER = "user", "User"
    ASSISTANT = "assistant", "Assistant"


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
    text = models.TextField(blank=True)
    status = models.CharField(max_length=10, choices=MessageStatus.choices, default=MessageStatus.COMPLETE)
    error_code = models.CharField(max_length=40, blank=True)
    sources = models.JSONField(default=list, blank=True)
    answered_from_faq = models.BooleanField(default=False)
    model = models.CharField(max_length=120, blank=True)
    provider = models.CharField(max_length=40, blank=True)
    offline = models.BooleanField(default=False)
    prompt_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)
    cost_usd = models.DecimalField(max_digits=12, decimal_places=6, null=True, blank=True)
    latency_ms = models.PositiveIntegerField(null=True, blank=True)
    first_token_ms = models.PositiveIntegerField(null=True, blank=True)
    feedback = models.CharField(max_length=4, choices=Feedback.choices, blank=True, default="")
    feedback_comment = models.TextField(blank=True)
    feedback_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["conversation", "created_at"], name="message_conversation_time")]

    def __str__(self) -> str:
        return f"{self.role}: {self.text[:60]}"
