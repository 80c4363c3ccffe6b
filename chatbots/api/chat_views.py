"""HTTP transports of the chat pipeline: JSON and Server-Sent Events (the OpenAI-compatible ones are in
``openai_views``, which shares the helpers below).

Plain async Django views (DRF has no async views): each parses input, calls ``answer_message`` and shapes
its events; none of them knows how an answer is made.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from chatbots.api.auth import api_key_bot_async
from chatbots.exceptions import InvalidMessage, LLMUnavailableError
from chatbots.models import Channel
from chatbots.pipeline import (
    Accepted,
    ChatRequest,
    Delta,
    Finished,
    HandoffUpdate,
    Sources,
    answer_message,
    validate_visitor_id,
)
from config.client_ip import request_client_ip
from config.errors import ApplicationError, error_body, error_response
from config.input_rules import loads


def json_body(request: HttpRequest) -> dict[str, Any]:
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


def check_types(body: dict[str, Any], fields: FieldTypes) -> None:
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


# Every chat response names its conversation in a header, sent before the first token of a stream: a
# client whose connection drops mid-answer still knows which conversation to continue.
CONVERSATION_HEADER = "X-Parlor-Conversation-Id"


def naming_conversation(response: HttpResponse, accepted: Accepted) -> HttpResponse:
    response[CONVERSATION_HEADER] = str(accepted.conversation_id)
    return response


def streaming(stream: AsyncIterator[bytes]) -> StreamingHttpResponse:
    response = StreamingHttpResponse(stream, content_type="text/event-stream; charset=utf-8")
    response["Cache-Control"] = "no-cache, no-transform"
    response["X-Accel-Buffering"] = "no"  # nginx and friends: do not buffer the stream
    return response


async def start(request: ChatRequest) -> tuple[Accepted, AsyncIterator[Any]]:
    """Run the pipeline up to acceptance so refusals still get a proper HTTP status."""
    events = answer_message(request)
    accepted = await anext(events)
    return accepted, events


async def until_finished(events: AsyncIterator[Any]) -> Finished:
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
        body = json_body(request)
        check_types(body, MESSAGE_FIELDS)
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
        accepted, events = await start(chat_request)
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
                elif isinstance(event, HandoffUpdate):
                    yield _sse("handoff", {"status": event.status, "available": event.available,
                                           "operator": event.operator_name})  # fmt: skip
                elif isinstance(event, Finished):
                    if event.provider_unavailable:
                        yield _sse("error", dict(error_body(LLMUnavailableError(event.error_message))))
                    yield _sse("done", dict(event.done_payload()))

        return naming_conversation(streaming(stream()), accepted)

    finished = await until_finished(events)
    payload: dict[str, Any] = {
        **finished.done_payload(),
        "answer": finished.text,
        "sources": finished.sources,
        "user_message_id": accepted.user_message_id,
    }
    if finished.provider_unavailable:
        payload["error"] = error_body(LLMUnavailableError(finished.error_message))
    return naming_conversation(JsonResponse(payload, status=200), accepted)
