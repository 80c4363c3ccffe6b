"""Writes to bots: create, update (with write-only provider keys), test the connection, rotate encryption."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from asgiref.sync import async_to_sync
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction

from accounts.exceptions import ApplicationError
from accounts.models import Organization
from chatbots import crypto
from chatbots.llm import ConnectionReport, check_endpoint, endpoints_for
from chatbots.llm.endpoints import new_client
from chatbots.llm.presets import PRESETS, Provider
from chatbots.models import Bot
from config import outbound

# Fields a customer may set through the admin or the API (keys go through their own arguments).
BOT_EDITABLE_FIELDS = (
    "name", "status", "system_prompt", "greeting", "suggested_questions", "answer_style", "fallback_reply",
    "language", "history_turns", "retrieval_top_k", "retrieval_min_score", "provider", "base_url", "model",
    "temperature", "max_output_tokens", "fallback_provider", "fallback_base_url", "fallback_model",
    "allowed_origins", "widget_title", "widget_primary_color", "widget_position", "widget_launcher_text",
    "widget_avatar_url", "widget_theme",
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


def _normalize_origin(origin: str) -> str:
    parts = urlsplit(origin.strip().rstrip("/"))
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.path or parts.query:
        raise ValidationError(
            {"allowed_origins": f"{origin!r} is not an origin like https://www.example.com."}
        )
    return f"{parts.scheme}://{parts.netloc.lower()}"


def bot_validate(bot: Bot) -> None:
    """Normalize list fields and check the rules that span fields, then the model's own validation."""
    questions = [str(q).strip() for q in (bot.suggested_questions or []) if str(q).strip()]
    if len(questions) > MAX_SUGGESTED_QUESTIONS:
        raise ValidationError({"suggested_questions": f"At most {MAX_SUGGESTED_QUESTIONS} questions."})
    bot.suggested_questions = questions
    if not isinstance(bot.allowed_origins, list):
        raise ValidationError({"allowed_origins": "A list of origins is expected."})
    bot.allowed_origins = list(
        dict.fromkeys(_normalize_origin(str(o)) for o in bot.allowed_origins if str(o).strip())
    )
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
    if api_key is not None:
        changed.append("api_key_encrypted")
    if fallback_api_key is not None:
        changed.append("fallback_api_key_encrypted")
    bot.save(update_fields=changed)
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
    """Delete a bot with its conversations and messages (knowledge sources stay: they may serve others)."""
    bot.delete()
