"""The admin's "test connection": one small request, reported in words an admin understands."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import openai
from django.conf import settings

from chatbots.llm.endpoints import Endpoint, get_client
from chatbots.llm.errors import describe_error, redact
from chatbots.llm.presets import sampling_params


@dataclass(frozen=True)
class ConnectionReport:
    ok: bool
    provider: str
    model: str
    message: str
    latency_ms: int | None = None


async def check_endpoint(endpoint: Endpoint, client: openai.AsyncOpenAI | None = None) -> ConnectionReport:
    """Ask the model for a one-word reply and report what happened in words an admin understands."""
    started = time.monotonic()
    try:
        response = await asyncio.wait_for(
            (client or get_client(endpoint)).chat.completions.create(
                model=endpoint.model,
                messages=[{"role": "user", "content": "Reply with the single word: OK"}],
                **{
                    key: value
                    for key, value in sampling_params(
                        provider=endpoint.provider, model=endpoint.model, temperature=0, max_tokens=16
                    ).items()
                    if key != "temperature"
                },
                stream=False,
            ),
            timeout=settings.LLM_FIRST_TOKEN_TIMEOUT,
        )
    except TimeoutError:
        return ConnectionReport(
            False,
            endpoint.provider,
            endpoint.model,
            f"No answer within {settings.LLM_FIRST_TOKEN_TIMEOUT:g}s.",
        )
    except Exception as exc:
        return ConnectionReport(
            False, endpoint.provider, endpoint.model, describe_error(exc, endpoint).reason
        )
    latency = int((time.monotonic() - started) * 1000)
    reply = ""
    if response.choices and response.choices[0].message:
        reply = (response.choices[0].message.content or "").strip()
    reply = redact(reply[:200], [endpoint.api_key])
    return ConnectionReport(
        True,
        endpoint.provider,
        response.model or endpoint.model,
        f"Connected. The model replied: {reply!r}",
        latency,
    )
