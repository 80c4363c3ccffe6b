from __future__ import annotations

import secrets

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
