"""Provider presets: every vendor is reached through its OpenAI-compatible endpoint."""

from __future__ import annotations

import re
from dataclasses import dataclass

from django.db import models


class Provider(models.TextChoices):
    DEFAULT = "default", "Deployment default (offline unless the operator configured a model)"
    OFFLINE = "offline", "Offline extractive answers (no language model)"
    OPENAI = "openai", "OpenAI"
    AZURE = "azure", "Azure OpenAI"
    ANTHROPIC = "anthropic", "Anthropic"
    GEMINI = "gemini", "Google Gemini"
    MISTRAL = "mistral", "Mistral"
    OPENROUTER = "openrouter", "OpenRouter"
    GROQ = "groq", "Groq"
    OLLAMA = "ollama", "Ollama (self-hosted)"
    VLLM = "vllm", "vLLM (self-hosted)"
    LLAMACPP = "llamacpp", "llama.cpp server (self-hosted)"
    CUSTOM = "custom", "Custom OpenAI-compatible endpoint"


@dataclass(frozen=True)
class Preset:
    provider: str
    base_url: str  # empty: the bot must supply one
    default_model: str
    needs_key: bool = True
    # Whether the endpoint accepts ``stream_options={"include_usage": true}``; without it usage is estimated.
    stream_usage: bool = True
    url_hint: str = ""  # shown when the bot must supply the URL
    # OpenAI's newer (reasoning) models refuse ``max_tokens``; its successor works for all OpenAI models.
    output_limit_param: str = "max_tokens"


PRESETS: dict[str, Preset] = {
    Provider.OPENAI: Preset(
        Provider.OPENAI,
        "https://api.openai.com/v1",
        "gpt-4o-mini",
        output_limit_param="max_completion_tokens",
    ),
    # Azure's v1 API is OpenAI-compatible; the resource name is part of the URL the bot must give.
    Provider.AZURE: Preset(
        Provider.AZURE,
        "",
        "gpt-4o-mini",
        url_hint="https://YOUR-RESOURCE.openai.azure.com/openai/v1/",
        output_limit_param="max_completion_tokens",
    ),
    Provider.ANTHROPIC: Preset(
        Provider.ANTHROPIC, "https://api.anthropic.com/v1/", "claude-3-5-haiku-latest"
    ),
    Provider.GEMINI: Preset(
        Provider.GEMINI, "https://generativelanguage.googleapis.com/v1beta/openai/", "gemini-2.0-flash"
    ),
    Provider.MISTRAL: Preset(Provider.MISTRAL, "https://api.mistral.ai/v1", "mistral-small-latest"),
    Provider.OPENROUTER: Preset(Provider.OPENROUTER, "https://openrouter.ai/api/v1", "openai/gpt-4o-mini"),
    Provider.GROQ: Preset(Provider.GROQ, "https://api.groq.com/openai/v1", "llama-3.1-8b-instant"),
    Provider.OLLAMA: Preset(Provider.OLLAMA, "http://localhost:11434/v1", "llama3.1", needs_key=False),
    Provider.VLLM: Preset(Provider.VLLM, "http://localhost:8000/v1", "", needs_key=False),
    Provider.LLAMACPP: Preset(Provider.LLAMACPP, "http://localhost:8080/v1", "", needs_key=False),
    Provider.CUSTOM: Preset(Provider.CUSTOM, "", "", needs_key=False, url_hint="https://llm.example.com/v1"),
}

# Endpoints that ignore the key still need a non-empty one: the SDK refuses to build a client without it.
PLACEHOLDER_KEY = "not-needed"

# Reasoning models accept only the default temperature; sending another one is a 400.
_FIXED_TEMPERATURE = re.compile(r"(^|/)(o\d|gpt-5)", re.IGNORECASE)


def sampling_params(
    *, provider: str, model: str, temperature: float, max_tokens: int
) -> dict[str, float | int]:
    """The temperature and output limit in the form this provider and model accept."""
    preset = PRESETS.get(provider)
    params: dict[str, float | int] = {preset.output_limit_param if preset else "max_tokens": max_tokens}
    if not _FIXED_TEMPERATURE.search(model):
        params["temperature"] = temperature
    return params
