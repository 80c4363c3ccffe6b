"""HTTP transports of the chat pipeline: JSON, Server-Sent Events and OpenAI-compatible chat completions.

Plain async Django views (DRF has no async views): each parses input, calls ``answer_message`` and shapes
its events; none of them knows how an answer is made.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from chatbots.api.auth import api_key_bot_async
from chatbots.exceptions import InvalidMessage, LLMUnavailableError
from chatbots.llm.events import Turn
from chatbots.models import Channel
from chatbots.pipeline import (
    Accepted,
    ChatRequest,
    Delta,
    Finished,
    Sources,
    answer_message,
    validate_visitor_id,
)
from config.client_ip import request_client_ip
from config.errors import ApplicationError, error_body, error_response
from config.input_rules import loads


def _json_body(request: HttpRequest) -> dict[str, Any]:
    if len(request.body) > settings.CHAT_MAX_FRAME_BYTES * 8:
        raise InvalidMessage("The request body is too large.")
    try:
        body = loads(request.body or b"{}")
    except ValueError:
        raise InvalidMessage("The request body must be JSON.") from None
    if not isinstance(body, dict):
        raise InvalidMessage("The request body must be a JSON object.")
    return body


FieldTypes = dict[str, tuple[tuple[type, ...], str]]
# The optional fields each endpoint reads, with the JSON types it accepts (null means absent): a wrong type
# is a 400, as OpenAI gives, never a silently different request.
MESSAGE_FIELDS: FieldTypes = {
    "conversation_id": ((str,), "a conversation id"),
    "stream": ((bool,), "true or false"),
}
OPENAI_FIELDS: FieldTypes = {
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


def _check_types(body: dict[str, Any], fields: FieldTypes) -> None:
    for name, (types, what) in fields.items():
        value = body.get(name)
        if value is None:
            continue
        # bool is an int in Python, not in JSON: `"temperature": true` is as wrong as `"stream": 1`.
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            raise InvalidMessage(f"'{name}' must be {what}.")


def _client_ip(request: HttpRequest) -> str:
    return request.META.get("REMOTE_ADDR", "")


def _sse(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n".encode()


def _streaming(stream: AsyncIterator[bytes]) -> StreamingHttpResponse:
    response = StreamingHttpResponse(stream, content_type="text/event-stream; charset=utf-8")
    response["Cache-Control"] = "no-cache, no-transform"
    response["X-Accel-Buffering"] = "no"  # nginx and friends: do not buffer the stream
    return response


async def _start(request: ChatRequest) -> tuple[Accepted, AsyncIterator[Any]]:
    """Run the pipeline up to acceptance so refusals still get a proper HTTP status."""
    events = answer_message(request)
    accepted = await anext(events)
    return accepted, events


async def _until_finished(events: AsyncIterator[Any]) -> Finished:
    """Run the pipeline to the end for a non-streaming reply (the answer is in the Finished event)."""
    async for event in events:
        if isinstance(event, Finished):
            return event
    raise RuntimeError("the chat pipeline ended without a Finished event")


@csrf_exempt
@require_POST
async def message_create(request: HttpRequest, public_id: str) -> HttpResponse:
    """POST /api/v1/bots/<public_id>/messages: {"message", "conversation_id"?, "visitor_id"?, "stream"?}"""
    try:
        body = _json_body(request)
        _check_types(body, MESSAGE_FIELDS)
        _api_key, bot = await api_key_bot_async(request=request, public_id=public_id, write=True)
        chat_request = ChatRequest(
            bot=bot,
            text=body.get("message"),
            channel=Channel.API,
            visitor_id=validate_visitor_id(body.get("visitor_id")),
            conversation_id=body.get("conversation_id") or None,
            api_key_id=_api_key.pk,
            client_ip=request_client_ip(request),
            language=body.get("language") or request.headers.get("Accept-Language", ""),
        )
        accepted, events = await _start(chat_request)
    except ApplicationError as exc:
        return error_response(exc)

    wants_stream = body.get("stream") is True or "text/event-stream" in request.headers.get("Accept", "")
    if wants_stream:

        async def stream() -> AsyncIterator[bytes]:
            yield _sse("accepted", {"conversation_id": str(accepted.conversation_id),
                                    "user_message_id": accepted.user_message_id})  # fmt: skip
            async for event in events:
                if isinstance(event, Delta):
                    yield _sse("delta", {"text": event.text})
                elif isinstance(event, Sources):
                    yield _sse("sources", {"sources": event.sources})
                elif isinstance(event, Finished):
                    if event.provider_unavailable:
                        yield _sse("error", dict(error_body(LLMUnavailableError(event.error_message))))
                    yield _sse("done", dict(event.done_payload()))

        return _streaming(stream())

    finished = await _until_finished(events)
    payload: dict[str, Any] = {
        **finished.done_payload(),
        "answer": finished.text,
        "sources": finished.sources,
        "user_message_id": accepted.user_message_id,
    }
    if finished.provider_unavailable:
        payload["error"] = error_body(LLMUnavailableError(finished.error_message))
    return JsonResponse(payload, status=200)


def _openai_error(exc: ApplicationError) -> JsonResponse:
    """An error in OpenAI's shape, which its clients parse: ``{"error": {"message", "type", "code"}}``."""
    kind = "invalid_request_error" if exc.http_status < 500 else "server_error"
    response = JsonResponse(
        {"error": {"message": exc.message, "type": kind, "code": exc.code}}, status=exc.http_status
    )
    if exc.retry_after is not None:
        response["Retry-After"] = str(exc.retry_after)
    return response


def _openai_visitor_id(user: Any) -> str:
    """OpenAI's ``user`` is free text; one that is not a valid visitor id is stored by its digest."""
    if not isinstance(user, str) or not user:
        return ""
    try:
        return validate_visitor_id(user)
    except InvalidMessage:
        return "user-" + hashlib.sha256(user.encode()).hexdigest()[:32]


def _openai_messages(raw: Any) -> tuple[str, list[Turn]]:
    """The last user message is the question; earlier user/assistant turns are the history."""
    if not isinstance(raw, list) or not raw:
        raise InvalidMessage("'messages' must be a non-empty list.")
    turns: list[Turn] = []
    for item in raw:
        if not isinstance(item, dict) or item.get("role") not in ("system", "user", "assistant", "developer"):
            raise InvalidMessage("Each message needs a role of system, user or assistant.")
        content = item.get("content")
        if isinstance(content, list):  # content parts: keep the text ones
            texts = [p.get("text") for p in content if isinstance(p, dict) and p.get("type") == "text"]
            if not all(isinstance(text, str) for text in texts):
                raise InvalidMessage("A text content part carries its text as a string.")
            content = "".join(texts)
        if not isinstance(content, str):
            raise InvalidMessage("Message content must be text.")
        if item["role"] in ("user", "assistant"):
            turns.append(Turn(role=item["role"], content=content))
    if not turns or turns[-1]["role"] != "user":
        raise InvalidMessage("The last message must come from the user.")
    return turns[-1]["content"], turns[:-1]


@csrf_exempt
@require_POST
async def openai_chat_completions(request: HttpRequest) -> HttpResponse:
    """POST /v1/chat/completions with model = a bot's public id; answers are grounded in the bot's knowledge.

    The bot's own system prompt and settings apply (a client's system message is ignored); the reply
    carries Parlor's extra ``sources`` field, which OpenAI clients ignore.
    """
    try:
        body = _json_body(request)
        _check_types(body, OPENAI_FIELDS)
        _check_types(body.get("stream_options") or {}, {"include_usage": ((bool,), "true or false")})
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise InvalidMessage("'model' must be the public id of a Parlor bot.")
        question, history = _openai_messages(body.get("messages"))
        api_key, bot = await api_key_bot_async(request=request, public_id=model, write=True)
        _accepted, events = await _start(
            ChatRequest(
                bot=bot,
                text=question,
                channel=Channel.OPENAI,
                visitor_id=_openai_visitor_id(body.get("user")),
                api_key_id=api_key.pk,
                client_ip=request_client_ip(request),
                language=request.headers.get("Accept-Language", ""),
                history=history,
            )
        )
    except ApplicationError as exc:
        return _openai_error(exc)

    completion_id = f"chatcmpl-{uuid.uuid4().hex}"
    created = int(time.time())

    def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> bytes:
        data = {"id": completion_id, "object": "chat.completion.chunk", "created": created, "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **extra}  # fmt: skip
        return f"data: {json.dumps(data)}\n\n".encode()

    if body.get("stream") is True:
        include_usage = (body.get("stream_options") or {}).get("include_usage") is True

        async def stream() -> AsyncIterator[bytes]:
            yield chunk({"role": "assistant", "content": ""})
            async for event in events:
                if isinstance(event, Delta):
                    yield chunk({"content": event.text})
                elif isinstance(event, Finished):
                    finish = "length" if event.incomplete else "stop"
                    yield chunk(
                        {},
                        finish,
                        sources=event.sources,
                        parlor_conversation_id=str(event.conversation_id),
                        parlor_message_id=event.message_id,
                    )
                    if include_usage:
                        usage = {"prompt_tokens": event.prompt_tokens, "completion_tokens": event.completion_tokens,
                                 "total_tokens": event.prompt_tokens + event.completion_tokens}  # fmt: skip
                        data = {"id": completion_id, "object": "chat.completion.chunk", "created": created,
                                "model": model, "choices": [], "usage": usage}  # fmt: skip
                        yield f"data: {json.dumps(data)}\n\n".encode()
            yield b"data: [DONE]\n\n"

        return _streaming(stream())

    finished = await _until_finished(events)
    return JsonResponse(
        {
            "id": completion_id,
            "object": "chat.completion",
            "created": created,
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": finished.text},
                    "finish_reason": "length" if finished.incomplete else "stop",
                }
            ],
            "usage": {
                "prompt_tokens": finished.prompt_tokens,
                "completion_tokens": finished.completion_tokens,
                "total_tokens": finished.prompt_tokens + finished.completion_tokens,
            },
            "sources": finished.sources,
            "parlor_conversation_id": str(finished.conversation_id),
            "parlor_message_id": finished.message_id,
        }
    )
