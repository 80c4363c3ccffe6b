"""Fixtures for the provider tests: the local OpenAI-compatible server and bots that point at it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from chatbots.llm.testserver import FakeLLMServer
from chatbots.models import Bot

SERVER_KEY = "sk-parlor-test-5f1c2a9e7b3d4c6f8a0b"


@pytest.fixture
def fake_llm() -> Iterator[FakeLLMServer]:
    """A real HTTP server on loopback in a background thread; the real openai SDK talks to it."""
    with FakeLLMServer(api_key=SERVER_KEY) as server:
        yield server


@pytest.fixture
def fast_llm_settings(settings):  # type: ignore[no-untyped-def]
    settings.LLM_RETRY_BACKOFF = 0.01
    settings.LLM_RETRY_MAX_WAIT = 5.0
    settings.LLM_MAX_RETRIES = 2
    settings.LLM_CONNECT_TIMEOUT = 2.0
    settings.LLM_FIRST_TOKEN_TIMEOUT = 5.0
    settings.LLM_TOTAL_TIMEOUT = 10.0
    settings.LLM_DEFAULT_API_KEY = ""
    settings.LLM_DEFAULT_BASE_URL = ""
    return settings


def scripted(model: str = "gpt-4o-mini", **script: object) -> str:
    """A model name carrying a script for the fake server, unique per call so counters never collide."""
    params = "&".join(f"{key}={value}" for key, value in {**script, "id": uuid.uuid4().hex[:8]}.items())
    return f"{model}?{params}"


def fake_bot(
    server: FakeLLMServer, *, model: str, fallback_model: str = "", key: str = SERVER_KEY, **extra
) -> Bot:
    """An unsaved bot on the custom provider pointing at the fake server (enough for the provider layer)."""
    bot = Bot(
        name="Test bot",
        provider="custom",
        base_url=server.base_url,
        model=model,
        fallback_model=fallback_model,
        **extra,
    )
    bot.set_api_key(key)
    return bot
