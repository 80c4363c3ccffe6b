"""OpenAI's protocol as Parlor speaks it under ``/v1/`` (the views are in ``openai_views``): its error
shape, which parameters are honoured, accepted or refused by name, how its messages become a question, a
history and instructions, and how an answer's end is reported.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from functools import wraps
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from chatbots.api.auth import api_key_bot_async
from chatbots.api.chat_views import FieldTypes, start
from chatbots.exceptions import (
    BotNotFound,
    InvalidMessage,
    MethodNotAllowed,
    ModelNotFound,
    RouteNotFound,
    UnsupportedParameter,
)
from chatbots.llm.events import Generation, Turn
from chatbots.models import Bot, Channel, SystemMessages
from chatbots.pipeline import Accepted, ChatRequest, Finished, validate_visitor_id
from config.client_ip import request_client_ip
from config.errors import ApplicationError

# --- errors ---------------------------------------------------------------------------------------


def openai_error(exc: ApplicationError) -> JsonResponse:
    """An error in OpenAI's shape, which its SDKs parse: ``{"error": {"message", "type", "param", "code"}}``."""
    kind = {401: "authentication_error", 403: "permission_error", 404: "invalid_request_error",
            429: "rate_limit_error"}.get(exc.http_status)  # fmt: skip
    kind = kind or ("invalid_request_error" if exc.http_status < 500 else "server_error")
    body = {"message": exc.message, "type": kind, "param": getattr(exc, "param", None), "code": exc.code}
    response = JsonResponse({"error": body}, status=exc.http_status)
    if exc.retry_after is not None:
        response["Retry-After"] = str(exc.retry_after)
    return response


View = Callable[..., Awaitable[HttpResponse]]


def openai_route(*methods: str) -> Callable[[View], View]:
    """An endpoint of the ``/v1/`` API: CSRF-exempt (API keys, no cookies), OpenAI-shaped 405, and every
    ``ApplicationError`` raised before the response starts as an OpenAI-shaped error."""

    def decorate(view: View) -> View:
        @csrf_exempt
        @wraps(view)
        async def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if request.method not in methods:
                response = openai_error(MethodNotAllowed(f"This endpoint accepts {', '.join(methods)}."))
                response["Allow"] = ", ".join(methods)
                return response
            try:
                return await view(request, *args, **kwargs)
            except BotNotFound:
                return openai_error(ModelNotFound())
            except ApplicationError as exc:
                return openai_error(exc)

        return wrapped

    return decorate


@csrf_exempt
async def not_found(request: HttpRequest, path: str = "") -> HttpResponse:
    """Any other path under ``/v1/``: OpenAI's clients expect JSON there, never an HTML page."""
    return openai_error(RouteNotFound("There is no such endpoint under /v1/ (see GET /api/schema/)."))


# --- parameters -----------------------------------------------------------------------------------

CHAT_FIELDS: FieldTypes = {
    "stream": ((bool,), "true or false"),
    "stream_options": ((dict,), "an object"),
    "user": ((str,), "a string"),
    "temperature": ((int, float), "a number"),
    "top_p": ((int, float), "a number"),
    "presence_penalty": ((int, float), "a number"),
    "frequency_penalty": ((int, float), "a number"),
    "max_tokens": ((int,), "an integer"),
    "max_completion_tokens": ((int,), "an integer"),
    "n": ((int,), "an integer"),
    "seed": ((int,), "an integer"),
    "stop": ((str, list), "a string or a list of strings"),
}
RESPONSES_FIELDS: FieldTypes = {
    "stream": ((bool,), "true or false"),
    "user": ((str,), "a string"),
    "safety_identifier": ((str,), "a string"),
    "instructions": ((str,), "a string"),
    "temperature": ((int, float), "a number"),
    "top_p": ((int, float), "a number"),
    "max_output_tokens": ((int,), "an integer"),
}


@dataclass(frozen=True)
class Parameters:
    """What an endpoint does with each of OpenAI's parameters; anything not listed is refused."""

    honoured: frozenset[str]
    # Accepted because they change nothing about the answer (bookkeeping for OpenAI's own platform).
    ignored: frozenset[str] = frozenset({"metadata", "store", "service_tier", "safety_identifier",
                                         "prompt_cache_key", "parallel_tool_calls"})  # fmt: skip
    # Accepted only at the value that asks for what Parlor does anyway (one text answer, no tools, ...).
    defaults: dict[str, tuple[Any, ...]] = field(default_factory=dict)


NO_TOOLS = "Parlor bots answer from their knowledge and do not call tools"
COMMON_DEFAULTS: dict[str, tuple[Any, ...]] = {
    "top_p": (1,),
    "tools": ([],),
    "tool_choice": ("none", "auto"),
}
CHAT_PARAMETERS = Parameters(
    honoured=frozenset(
        {
            "model",
            "messages",
            "stream",
            "stream_options",
            "user",
            "temperature",
            "max_tokens",
            "max_completion_tokens",
            "stop",
        }
    ),
    defaults={
        **COMMON_DEFAULTS,
        "n": (1,),
        "presence_penalty": (0,),
        "frequency_penalty": (0,),
        "logprobs": (False,),
        "top_logprobs": (0,),
        "logit_bias": ({},),
        "functions": ([],),
        "function_call": ("none", "auto"),
        "response_format": ({"type": "text"},),
        "modalities": (["text"],),
    },
)
RESPONSES_PARAMETERS = Parameters(
    honoured=frozenset(
        {"model", "input", "instructions", "stream", "user", "temperature", "max_output_tokens"}
    ),
    defaults={
        **COMMON_DEFAULTS,
        "truncation": ("disabled", "auto"),
        "text": ({"format": {"type": "text"}}, {}),
        "include": ([],),
        "background": (False,),
        "reasoning": ({},),
    },
)
WHY = {
    "tools": NO_TOOLS, "tool_choice": NO_TOOLS, "functions": NO_TOOLS, "function_call": NO_TOOLS,
    "n": "Parlor gives one answer per request (n=1)",
    "response_format": "Parlor answers in text", "text": "Parlor answers in text",
    "modalities": "Parlor answers in text",
    "logprobs": "Parlor does not return log probabilities",
    "top_logprobs": "Parlor does not return log probabilities",
    "previous_response_id": "Parlor does not keep responses to continue; send the conversation as 'input'",
    "conversation": "Parlor does not keep responses to continue; send the conversation as 'input'",
}  # fmt: skip


def _is_default(value: Any, allowed: tuple[Any, ...]) -> bool:
    for default in allowed:
        if isinstance(default, bool) or isinstance(value, bool):
            if type(default) is type(value) and default == value:  # JSON's true is not 1
                return True
        elif value == default:
            return True
    return False


def check_parameters(body: dict[str, Any], parameters: Parameters) -> None:
    """Refuse, by name, every parameter the endpoint would otherwise have to ignore."""
    for name, value in body.items():
        if value is None or name in parameters.honoured or name in parameters.ignored:
            continue
        allowed = parameters.defaults.get(name)
        if allowed is not None and _is_default(value, allowed):
            continue
        why = WHY.get(name, "Parlor does not support it")
        raise UnsupportedParameter(f"Unsupported parameter: '{name}'. {why}.", param=name)


def number_in(body: dict[str, Any], name: str, low: float, high: float) -> float | None:
    value = body.get(name)
    if value is not None and not low <= value <= high:
        raise InvalidMessage(f"'{name}' must be between {low:g} and {high:g}.", code="invalid_value")
    return value


def stop_sequences(value: Any) -> tuple[str, ...]:
    stops = [value] if isinstance(value, str) else (value or [])
    if len(stops) > 4 or not all(isinstance(s, str) and 0 < len(s) <= 200 for s in stops):
        raise InvalidMessage("'stop' is up to 4 non-empty strings.", code="invalid_value")
    return tuple(stops)


def _visitor_id(user: Any) -> str:
    """OpenAI's ``user`` is free text; one that is not a valid visitor id is stored by its digest."""
    if not isinstance(user, str) or not user:
        return ""
    try:
        return validate_visitor_id(user)
    except InvalidMessage:
        return "user-" + hashlib.sha256(user.encode()).hexdigest()[:32]


def _model(body: dict[str, Any]) -> str:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidMessage("'model' must be the public id of a Parlor bot.")
    return model


# --- messages -------------------------------------------------------------------------------------


@dataclass
class Conversation:
    """A request's messages as the pipeline takes them: the question, the history, system texts."""

    question: str = ""
    history: list[Turn] = field(default_factory=list)
    instructions: list[str] = field(default_factory=list)


TEXT_PARTS = ("text", "input_text", "output_text")
SKIPPED_ROLES = ("tool", "function")  # tool results: Parlor calls no tools, the text turns carry the story
SKIPPED_ITEMS = ("function_call", "function_call_output", "reasoning", "custom_tool_call",
                 "custom_tool_call_output")  # fmt: skip


def _content_text(content: Any, where: str) -> str | None:
    """A message's text; ``None`` when it has none (an assistant turn that only called tools)."""
    if content is None or isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise InvalidMessage("Message content must be text.")
    texts = []
    for part in content:
        if not isinstance(part, dict):
            raise InvalidMessage("Message content parts must be objects.")
        if part.get("type") in TEXT_PARTS:
            if not isinstance(part.get("text"), str):
                raise InvalidMessage("A text content part carries its text as a string.")
            texts.append(part["text"])
        elif part.get("type") != "refusal":
            raise UnsupportedParameter(
                f"Unsupported content type {str(part.get('type'))[:40]!r}: Parlor bots read text only.",
                param=where, code="unsupported_value",
            )  # fmt: skip
    return "".join(texts)


def read_messages(raw: Any, *, name: str = "messages") -> Conversation:
    """OpenAI's message list: the last user message is the question, earlier user and assistant text turns
    the history; system/developer messages are collected; tool calls and tool results are skipped."""
    if not isinstance(raw, list) or not raw:
        raise InvalidMessage(f"'{name}' must be a non-empty list.")
    conversation = Conversation()
    turns: list[Turn] = []
    for index, item in enumerate(raw):
        if not isinstance(item, dict):
            raise InvalidMessage("Each message must be an object.")
        if item.get("type") in SKIPPED_ITEMS:
            continue
        role = item.get("role")
        if role not in ("system", "developer", "user", "assistant", *SKIPPED_ROLES):
            raise InvalidMessage("Each message needs a role of system, developer, user, assistant or tool.")
        if role in SKIPPED_ROLES:
            continue
        text = _content_text(item.get("content"), f"{name}[{index}].content")
        if role in ("system", "developer"):
            if text:
                conversation.instructions.append(text)
        elif text is not None and (text or role == "user"):
            turns.append(Turn(role=role, content=text))
        elif role == "user" or not item.get("tool_calls"):
            raise InvalidMessage("Message content must be text.")
    if not turns or turns[-1]["role"] != "user":
        raise InvalidMessage("The last message must come from the user.")
    conversation.question, conversation.history = turns[-1]["content"], turns[:-1]
    return conversation


def generation_for(
    bot: Bot, conversation: Conversation, *, temperature: Any, max_tokens: Any, stop: Any
) -> Generation:
    """The client's parameters for this answer, under the bot's rules for system messages."""
    if conversation.instructions and bot.api_system_messages == SystemMessages.REFUSE:
        raise UnsupportedParameter(
            "This bot does not accept system messages from API clients: its instructions are set in Parlor.",
            param="messages", code="system_message_refused",
        )  # fmt: skip
    return Generation(
        temperature=temperature,
        max_tokens=max_tokens,
        stop=stop,
        instructions="\n\n".join(conversation.instructions),
    )


def finish_reason(finished: Finished) -> str:
    """``length`` only when the model reached its token limit; an answer cut off by a failure is
    ``error`` (as OpenRouter reports it), never mistaken for either."""
    if finished.incomplete:
        return "error"
    return "length" if finished.hit_token_limit else "stop"


def usage_of(finished: Finished) -> dict[str, int]:
    return {"prompt_tokens": finished.prompt_tokens, "completion_tokens": finished.completion_tokens,
            "total_tokens": finished.prompt_tokens + finished.completion_tokens}  # fmt: skip


def parlor_fields(finished: Finished) -> dict[str, Any]:
    """Parlor's extras on an answer, which OpenAI clients ignore: its sources and stored ids."""
    return {"sources": finished.sources, "parlor_conversation_id": str(finished.conversation_id),
            "parlor_message_id": finished.message_id}  # fmt: skip


def sse_data(data: dict[str, Any] | str) -> bytes:
    return f"data: {data if isinstance(data, str) else json.dumps(data)}\n\n".encode()


async def chat_request(request: HttpRequest, body: dict[str, Any], conversation: Conversation,
                        generation_args: dict[str, Any], user: Any) -> tuple[str, Accepted, AsyncIterator[Any]]:  # fmt: skip
    model = _model(body)
    api_key, bot = await api_key_bot_async(request=request, public_id=model, write=True)
    accepted, events = await start(
        ChatRequest(
            bot=bot,
            text=conversation.question,
            channel=Channel.OPENAI,
            visitor_id=_visitor_id(user),
            api_key_id=api_key.pk,
            client_ip=request_client_ip(request),
            language=request.headers.get("Accept-Language", ""),
            history=conversation.history,
            generation=generation_for(bot, conversation, **generation_args),
        )
    )
    return model, accepted, events
