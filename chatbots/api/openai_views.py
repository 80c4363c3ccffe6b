"""The OpenAI-compatible API under ``/v1/``: chat completions, the Responses API and the model list.

``model`` is a bot's public id; answers are grounded in the bot's knowledge and run the same
``answer_message`` as every other transport. OpenAI's parameters are honoured (``temperature``,
``max_tokens``/``max_completion_tokens``/``max_output_tokens`` within the bot's limit, ``stop``,
``stream_options.include_usage``), accepted when they change nothing Parlor does, or refused with a 400 in
OpenAI's shape naming the parameter: a client never gets a 200 that silently ignored what it asked for.
Every error under ``/v1/`` (404 and 405 included) is ``{"error": {"message", "type", "param", "code"}}``.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse

from chatbots.api.auth import api_key_bots_async
from chatbots.api.chat_views import check_types, json_body, naming_conversation, streaming, until_finished
from chatbots.api.openai_protocol import (
    CHAT_FIELDS,
    CHAT_PARAMETERS,
    RESPONSES_FIELDS,
    RESPONSES_PARAMETERS,
    Conversation,
    chat_request,
    check_parameters,
    finish_reason,
    number_in,
    openai_error,
    openai_route,
    parlor_fields,
    read_messages,
    sse_data,
    stop_sequences,
    usage_of,
)
from chatbots.exceptions import InvalidMessage, LLMUnavailableError, ModelNotFound
from chatbots.models import Bot
from chatbots.pipeline import Delta, Finished

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
    generation_args = {"temperature": number_in(body, "temperature", 0, 2), "max_tokens": max_tokens,
                       "stop": stop_sequences(body.get("stop"))}  # fmt: skip
    model, accepted, events = await chat_request(
        request, body, conversation, generation_args, body.get("user")
    )

    completion_id = f"chatcmpl-{uuid.uuid4().hex}"
    created = int(time.time())
    head = {"id": completion_id, "object": "chat.completion.chunk", "created": created, "model": model}

    if body.get("stream") is True:
        include_usage = (body.get("stream_options") or {}).get("include_usage") is True

        async def stream() -> AsyncIterator[bytes]:
            yield sse_data({**head, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                                                  "finish_reason": None}]})  # fmt: skip
            async for event in events:
                if isinstance(event, Delta):
                    yield sse_data({**head, "choices": [{"index": 0, "delta": {"content": event.text},
                                                          "finish_reason": None}]})  # fmt: skip
                elif isinstance(event, Finished):
                    if event.provider_unavailable and not event.text:
                        # Nothing was answered: an in-stream error, which OpenAI's SDKs raise.
                        error = openai_error(LLMUnavailableError(event.error_message))
                        yield sse_data(json.loads(error.content))
                        return
                    yield sse_data({**head, "choices": [{"index": 0, "delta": {},
                                     "finish_reason": finish_reason(event)}], **parlor_fields(event)})  # fmt: skip
                    if include_usage:
                        yield sse_data({**head, "choices": [], "usage": usage_of(event)})
            yield sse_data("[DONE]")

        return naming_conversation(streaming(stream()), accepted)

    finished = await until_finished(events)
    if finished.provider_unavailable and not finished.text:
        return openai_error(LLMUnavailableError(finished.error_message))
    response = JsonResponse(
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
            "usage": usage_of(finished),
            **parlor_fields(finished),
        }
    )
    return naming_conversation(response, accepted)


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
        **(parlor_fields(finished) if finished is not None else {}),
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
        "temperature": number_in(body, "temperature", 0, 2),
        "max_tokens": max_tokens,
        "stop": (),
    }
    user = body.get("safety_identifier") or body.get("user")
    model, accepted, events = await chat_request(request, body, conversation, generation_args, user)
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

        return naming_conversation(streaming(stream()), accepted)

    finished = await until_finished(events)
    if finished.provider_unavailable and not finished.text:
        return openai_error(LLMUnavailableError(finished.error_message))
    status = _response_status(finished)
    item = _message_item(item_id, finished.text, "incomplete" if status != "completed" else status)
    response = JsonResponse(
        _response_object(response_id, created, model, body, status=status, output=[item], finished=finished)
    )
    return naming_conversation(response, accepted)


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
    raise ModelNotFound()
