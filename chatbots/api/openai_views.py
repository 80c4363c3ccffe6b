"""The OpenAI-compatible API under ``/v1/``: chat completions, the Responses API and the model list.

``model`` is a bot's public id; answers are grounded in the bot's knowledge and run the same
``answer_message`` as every other transport. OpenAI's parameters are honoured (``temperature``,
``max_tokens``/``max_completion_tokens``/``max_output_tokens`` within the bot's limit, ``stop``,
``stream_options.include_usage``), accepted when they change nothing Parlor does, or refused with a 400 in
OpenAI's shape naming the parameter: a client never gets a 200 that silently ignored what it asked for.
Every error under ``/v1/`` (404 and 405 included) is ``{"error": {"message", "type", "param", "code"}}``.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from functools import wraps
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from chatbots.api.auth import api_key_bot_async, api_key_bots_async
from chatbots.api.chat_views import FieldTypes, check_types, json_body, start, streaming, until_finished
from chatbots.exceptions import (
    BotNotFound,
    InvalidMessage,
    LLMUnavailableError,
    MethodNotAllowed,
    ModelNotFound,
    RouteNotFound,
    UnsupportedParameter,
)
from chatbots.llm.events import Generation, Turn
from chatbots.models import Bot, Channel, SystemMessages
from chatbots.pipeline import ChatRequest, Delta, Finished, validate_visitor_id
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
                response = openai_error(MethodNotAllowed(f"{request.path} accepts {', '.join(methods)}."))
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
    return openai_error(RouteNotFound(f"Unknown endpoint: {request.method} {request.path}."))


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


def _number_in(body: dict[str, Any], name: str, low: float, high: float) -> float | None:
    value = body.get(name)
    if value is not None and not low <= value <= high:
        raise InvalidMessage(f"'{name}' must be between {low:g} and {high:g}.", code="invalid_value")
    return value


def _stop_sequences(value: Any) -> tuple[str, ...]:
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


def _usage(finished: Finished) -> dict[str, int]:
    return {"prompt_tokens": finished.prompt_tokens, "completion_tokens": finished.completion_tokens,
            "total_tokens": finished.prompt_tokens + finished.completion_tokens}  # fmt: skip


def _parlor_fields(finished: Finished) -> dict[str, Any]:
    """Parlor's extras on an answer, which OpenAI clients ignore: its sources and stored ids."""
    return {"sources": finished.sources, "parlor_conversation_id": str(finished.conversation_id),
            "parlor_message_id": finished.message_id}  # fmt: skip


def _sse_data(data: dict[str, Any] | str) -> bytes:
    return f"data: {data if isinstance(data, str) else json.dumps(data)}\n\n".encode()


async def _chat_request(request: HttpRequest, body: dict[str, Any], conversation: Conversation,
                        generation_args: dict[str, Any], user: Any) -> tuple[str, AsyncIterator[Any]]:  # fmt: skip
    model = _model(body)
    api_key, bot = await api_key_bot_async(request=request, public_id=model, write=True)
    _accepted, events = await start(
        ChatRequest(
            bot=bot,
            text=conversation.question,
            channel=Channel.OPENAI,
            visitor_id=_visitor_id(user),
            api_key_id=api_key.pk,
            client_ip=request_client_ip(request),
            history=conversation.history,
            generation=generation_for(bot, conversation, **generation_args),
        )
    )
    return model, events


# --- /v1/chat/completions -------------------------------------------------------------------------


@openai_route("POST")
async def chat_completions(request: HttpRequest) -> HttpResponse:
    """POST /v1/chat/completions with ``model`` = a bot's public id."""
    body = json_body(request)
    check_types(body, CHAT_FIELDS)
    check_types(body.get("stream_options") or {}, {"include_usage": ((bool,), "true or false")})
    check_parameters(body, CHAT_PARAMETERS)
    conversation = read_messages(body.get("messages"))
    max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
    if max_tokens is not None and max_tokens < 1:
        raise InvalidMessage("'max_tokens' must be at least 1.", code="invalid_value")
    generation_args = {"temperature": _number_in(body, "temperature", 0, 2), "max_tokens": max_tokens,
                       "stop": _stop_sequences(body.get("stop"))}  # fmt: skip
    model, events = await _chat_request(request, body, conversation, generation_args, body.get("user"))

    completion_id = f"chatcmpl-{uuid.uuid4().hex}"
    created = int(time.time())
    head = {"id": completion_id, "object": "chat.completion.chunk", "created": created, "model": model}

    if body.get("stream") is True:
        include_usage = (body.get("stream_options") or {}).get("include_usage") is True

        async def stream() -> AsyncIterator[bytes]:
            yield _sse_data({**head, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                                                  "finish_reason": None}]})  # fmt: skip
            async for event in events:
                if isinstance(event, Delta):
                    yield _sse_data({**head, "choices": [{"index": 0, "delta": {"content": event.text},
                                                          "finish_reason": None}]})  # fmt: skip
                elif isinstance(event, Finished):
                    if event.provider_unavailable and not event.text:
                        # Nothing was answered: an in-stream error, which OpenAI's SDKs raise.
                        error = openai_error(LLMUnavailableError(event.error_message))
                        yield _sse_data(json.loads(error.content))
                        return
                    yield _sse_data({**head, "choices": [{"index": 0, "delta": {},
                                     "finish_reason": finish_reason(event)}], **_parlor_fields(event)})  # fmt: skip
                    if include_usage:
                        yield _sse_data({**head, "choices": [], "usage": _usage(event)})
            yield _sse_data("[DONE]")

        return streaming(stream())

    finished = await until_finished(events)
    if finished.provider_unavailable and not finished.text:
        return openai_error(LLMUnavailableError(finished.error_message))
    return JsonResponse(
        {
            "id": completion_id,
            "object": "chat.completion",
            "created": created,
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": finished.text, "refusal": None},
                    "logprobs": None,
                    "finish_reason": finish_reason(finished),
                }
            ],
            "usage": _usage(finished),
            **_parlor_fields(finished),
        }
    )


# --- /v1/responses --------------------------------------------------------------------------------


def _response_input(body: dict[str, Any]) -> Conversation:
    raw = body.get("input")
    if isinstance(raw, str):
        raw = [{"role": "user", "content": raw}]
    conversation = read_messages(raw, name="input")
    if isinstance(body.get("instructions"), str) and body["instructions"].strip():
        conversation.instructions.insert(0, body["instructions"])
    return conversation


def _response_object(response_id: str, created: int, model: str, body: dict[str, Any], *, status: str,
                     output: list[dict[str, Any]], finished: Finished | None = None) -> dict[str, Any]:  # fmt: skip
    """A ``response`` object as OpenAI's SDKs parse it."""
    usage = error = incomplete = None
    if finished is not None:
        usage = {"input_tokens": finished.prompt_tokens, "output_tokens": finished.completion_tokens,
                 "total_tokens": finished.prompt_tokens + finished.completion_tokens,
                 "input_tokens_details": {"cached_tokens": 0},
                 "output_tokens_details": {"reasoning_tokens": 0}}  # fmt: skip
        if finished.incomplete:
            error = {"code": "server_error", "message": "The answer was interrupted before it was complete."}
        elif finished.hit_token_limit:
            incomplete = {"reason": "max_output_tokens"}
    return {
        "id": response_id, "object": "response", "created_at": created, "status": status, "model": model,
        "output": output, "usage": usage, "error": error, "incomplete_details": incomplete,
        "instructions": body.get("instructions"), "max_output_tokens": body.get("max_output_tokens"),
        "temperature": body.get("temperature"), "top_p": 1, "parallel_tool_calls": False, "tool_choice": "none",
        "tools": [], "text": {"format": {"type": "text"}}, "truncation": "disabled",
        "metadata": body.get("metadata") or {}, "store": False,
        **(_parlor_fields(finished) if finished is not None else {}),
    }  # fmt: skip


def _response_status(finished: Finished) -> str:
    if finished.incomplete:
        return "failed"
    return "incomplete" if finished.hit_token_limit else "completed"


def _message_item(item_id: str, text: str, status: str) -> dict[str, Any]:
    content = (
        [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}]
        if status != "in_progress"
        else []
    )
    return {"id": item_id, "type": "message", "status": status, "role": "assistant", "content": content}


@openai_route("POST")
async def responses_create(request: HttpRequest) -> HttpResponse:
    """POST /v1/responses: OpenAI's Responses API, text in and text out, streamed as its events."""
    body = json_body(request)
    check_types(body, RESPONSES_FIELDS)
    check_parameters(body, RESPONSES_PARAMETERS)
    conversation = _response_input(body)
    max_tokens = body.get("max_output_tokens")
    if max_tokens is not None and max_tokens < 1:
        raise InvalidMessage("'max_output_tokens' must be at least 1.", code="invalid_value")
    generation_args = {
        "temperature": _number_in(body, "temperature", 0, 2),
        "max_tokens": max_tokens,
        "stop": (),
    }
    user = body.get("safety_identifier") or body.get("user")
    model, events = await _chat_request(request, body, conversation, generation_args, user)
    response_id, item_id = f"resp_{uuid.uuid4().hex}", f"msg_{uuid.uuid4().hex}"
    created = int(time.time())

    if body.get("stream") is True:

        async def stream() -> AsyncIterator[bytes]:
            sequence = 0

            def event(kind: str, **data: Any) -> bytes:
                nonlocal sequence
                sequence += 1
                return f"event: {kind}\ndata: {json.dumps({'type': kind, 'sequence_number': sequence, **data})}\n\n".encode()

            start_object = _response_object(
                response_id, created, model, body, status="in_progress", output=[]
            )
            yield event("response.created", response=start_object)
            yield event("response.in_progress", response=start_object)
            yield event(
                "response.output_item.added", output_index=0, item=_message_item(item_id, "", "in_progress")
            )
            place = {"item_id": item_id, "output_index": 0, "content_index": 0}
            empty_part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
            yield event("response.content_part.added", **place, part=empty_part)
            async for chat_event in events:
                if isinstance(chat_event, Delta):
                    yield event("response.output_text.delta", **place, delta=chat_event.text, logprobs=[])
                elif isinstance(chat_event, Finished):
                    status = _response_status(chat_event)
                    item = _message_item(
                        item_id, chat_event.text, "incomplete" if status != "completed" else status
                    )
                    yield event("response.output_text.done", **place, text=chat_event.text, logprobs=[])
                    yield event("response.content_part.done", **place, part=item["content"][0])
                    yield event("response.output_item.done", output_index=0, item=item)
                    final = _response_object(response_id, created, model, body, status=status, output=[item],
                                             finished=chat_event)  # fmt: skip
                    yield event(f"response.{status}", response=final)

        return streaming(stream())

    finished = await until_finished(events)
    if finished.provider_unavailable and not finished.text:
        return openai_error(LLMUnavailableError(finished.error_message))
    status = _response_status(finished)
    item = _message_item(item_id, finished.text, "incomplete" if status != "completed" else status)
    return JsonResponse(
        _response_object(response_id, created, model, body, status=status, output=[item], finished=finished)
    )


# --- /v1/models -----------------------------------------------------------------------------------


def _model_object(bot: Bot) -> dict[str, Any]:
    return {"id": bot.public_id, "object": "model", "created": int(bot.created_at.timestamp()),
            "owned_by": bot.organization.slug, "name": bot.name}  # fmt: skip


@openai_route("GET")
async def models_list(request: HttpRequest) -> HttpResponse:
    """GET /v1/models: the bots this API key may use, as OpenAI models (many clients call this first)."""
    _api_key, bots = await api_key_bots_async(request=request)
    return JsonResponse({"object": "list", "data": [_model_object(bot) for bot in bots]})


@openai_route("GET")
async def model_detail(request: HttpRequest, model: str) -> HttpResponse:
    """GET /v1/models/<id>: one bot as an OpenAI model; another organization's is not found."""
    _api_key, bots = await api_key_bots_async(request=request)
    for bot in bots:
        if bot.public_id == model:
            return JsonResponse(_model_object(bot))
    raise ModelNotFound(f"The model '{model[:64]}' does not exist or this API key may not use it.")
