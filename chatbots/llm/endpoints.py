"""Where a bot's models live, and the shared SDK clients that reach them."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import httpx
import httpx2  # the HTTP library the openai SDK is built on (its client takes httpx2 types)
import openai
from django.conf import settings

from chatbots.crypto import DecryptionError
from chatbots.llm.presets import PLACEHOLDER_KEY, PRESETS, Provider
from config import outbound

if TYPE_CHECKING:
    from chatbots.models import Bot

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Endpoint:
    """Where one model lives. ``repr`` never shows the key."""

    provider: str
    base_url: str
    model: str
    api_key: str
    stream_usage: bool = True

    def __repr__(self) -> str:
        return f"Endpoint(provider={self.provider!r}, base_url={self.base_url!r}, model={self.model!r})"

    __str__ = __repr__


def _endpoint(provider: str, base_url: str, model: str, api_key: str) -> Endpoint | None:
    """An endpoint for a preset plus the bot's overrides, or None when it is not usable as configured."""
    if provider == Provider.OFFLINE:
        return None
    if provider == Provider.DEFAULT:
        if not (settings.LLM_DEFAULT_API_KEY or settings.LLM_DEFAULT_BASE_URL):
            return None
        return Endpoint(
            provider="default",
            base_url=settings.LLM_DEFAULT_BASE_URL or PRESETS[Provider.OPENAI].base_url,
            model=model or settings.LLM_DEFAULT_MODEL,
            api_key=settings.LLM_DEFAULT_API_KEY or PLACEHOLDER_KEY,
        )
    preset = PRESETS.get(provider)
    if preset is None:
        return None
    url = base_url or preset.base_url
    model = model or preset.default_model
    if not url or not model or (preset.needs_key and not api_key):
        return None
    return Endpoint(provider, url, model, api_key or PLACEHOLDER_KEY, preset.stream_usage)


def _stored_key(bot: Bot, getter: Callable[[], str], label: str) -> str:
    try:
        return getter()
    except DecryptionError:
        # The key was encrypted with a key no longer in FIELD_ENCRYPTION_KEYS: answer as if none was set.
        logger.error("The %s of bot %s cannot be decrypted; re-enter it in the admin.", label, bot.public_id)
        return ""


def endpoints_for(bot: Bot) -> list[Endpoint]:
    """The bot's model and its fallback model, in the order to try them (possibly none: offline)."""
    api_key = _stored_key(bot, bot.get_api_key, "API key")
    primary = _endpoint(bot.provider, bot.base_url, bot.model, api_key)
    endpoints = [primary] if primary else []
    if bot.fallback_provider or bot.fallback_model:
        fallback_key = _stored_key(bot, bot.get_fallback_api_key, "fallback API key")
        if bot.fallback_provider and bot.fallback_provider != bot.provider:
            fallback = _endpoint(
                bot.fallback_provider, bot.fallback_base_url, bot.fallback_model, fallback_key
            )
        else:  # same provider: another model (or URL/key) at the same vendor
            fallback = _endpoint(
                bot.provider,
                bot.fallback_base_url or bot.base_url,
                bot.fallback_model or bot.model,
                fallback_key or api_key,
            )
        if fallback and fallback != primary:
            endpoints.append(fallback)
    return endpoints


# --- clients --------------------------------------------------------------------------------------
# An httpx connection pool belongs to the event loop that opened it, so clients are cached per loop.
_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[str, str], openai.AsyncOpenAI]] = (
    weakref.WeakKeyDictionary()
)


def _timeout() -> httpx.Timeout:
    return httpx.Timeout(
        connect=settings.LLM_CONNECT_TIMEOUT,
        read=settings.LLM_FIRST_TOKEN_TIMEOUT,
        write=settings.LLM_CONNECT_TIMEOUT,
        # Waiting for a free pooled connection is part of waiting for the first token.
        pool=settings.LLM_FIRST_TOKEN_TIMEOUT,
    )


def get_client(endpoint: Endpoint) -> openai.AsyncOpenAI:
    """The shared client for this endpoint and key (retries are ours, so the SDK's are switched off)."""
    per_loop = _clients.setdefault(asyncio.get_running_loop(), {})
    cache_key = (endpoint.base_url, hashlib.sha256(endpoint.api_key.encode()).hexdigest())
    client = per_loop.get(cache_key)
    if client is None:
        client = per_loop[cache_key] = new_client(endpoint)
    return client


def new_client(endpoint: Endpoint) -> openai.AsyncOpenAI:
    """A client of its own (close it after use); retries are ours, so the SDK's are switched off.

    Its HTTP client is Parlor's outbound guard (config/outbound.py): every connection goes only to a
    checked address (private networks only with ``LLM_ALLOW_PRIVATE_BASE_URLS`` or
    ``OUTBOUND_ALLOWED_NETWORKS``), and a redirect is refused, never followed: an API endpoint has no
    reason to redirect, and following one would let an allowed host send us anywhere."""
    # One web process may stream many answers from the same endpoint at once (each holds a connection
    # for its whole answer): the SDK's default of 1,000 connections timed out streams at 1,000 visitors.
    http_client = outbound.async_client(
        http=httpx2,
        allow_private=settings.LLM_ALLOW_PRIVATE_BASE_URLS,
        timeout=_timeout(),
        limits=httpx2.Limits(max_connections=settings.LLM_MAX_CONNECTIONS, max_keepalive_connections=200),
    )
    return openai.AsyncOpenAI(
        base_url=endpoint.base_url, api_key=endpoint.api_key, max_retries=0, timeout=_timeout(),
        http_client=http_client,
    )  # fmt: skip
