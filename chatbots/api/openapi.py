"""The chat endpoints in the OpenAPI schema (drf-spectacular ``POSTPROCESSING_HOOKS``).

They are plain async Django views (DRF has no async views), so drf-spectacular cannot see them; their
request and response shapes are written here, next to the views (``chat_views``, ``openai_views``), and
added to ``/api/schema/`` so ``/api/docs/`` and API fuzzing cover every route.
"""

from __future__ import annotations

from typing import Any

Schema = dict[str, Any]


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: Schema) -> Schema:
    return {"application/json": {"schema": schema}}


def _obj(properties: Schema, required: list[str] | None = None, **extra: Any) -> Schema:
    return {
        "type": "object",
        "properties": properties,
        **({"required": required} if required else {}),
        **extra,
    }


STRING, INTEGER, BOOLEAN = {"type": "string"}, {"type": "integer"}, {"type": "boolean"}
NULLABLE_STRING = {"type": "string", "nullable": True}
ANY_VALUE: Schema = {}  # refused or accepted at run time, by value (docs/api.md lists the rules)
TEXT_OR_PARTS = {"oneOf": [STRING, {"type": "array", "items": {"type": "object"}}], "nullable": True}

COMPONENTS: dict[str, Schema] = {
    "ChatSource": _obj(
        {
            "source_id": INTEGER,
            "title": STRING,
            "url": NULLABLE_STRING,
            "page": {"type": "integer", "nullable": True},
        }
    ),
    "ChatUsage": _obj({"prompt_tokens": INTEGER, "completion_tokens": INTEGER}),
    "ChatMessageRequest": _obj(
        {
            "message": {"type": "string", "description": "The visitor's question."},
            "conversation_id": {
                "type": "string",
                "nullable": True,
                "description": "Continue a conversation.",
            },
            "visitor_id": {
                "type": "string",
                "nullable": True,
                "description": "Up to 64 of A-Z a-z 0-9 _.:@-",
            },
            "stream": {"type": "boolean", "nullable": True, "description": "Answer as Server-Sent Events."},
        },
        ["message"],
    ),
    "ChatMessageResponse": _obj(
        {
            "answer": STRING,
            "sources": {"type": "array", "items": _ref("ChatSource")},
            "conversation_id": NULLABLE_STRING,
            "message_id": {"type": "integer", "nullable": True},
            "user_message_id": INTEGER,
            "usage": _ref("ChatUsage"),
            "incomplete": BOOLEAN,
            "offline": BOOLEAN,
            "error": {**_ref("ErrorBody"), "nullable": True},
        }
    ),
    "ErrorBody": _obj({"code": STRING, "message": STRING, "retry_after": INTEGER}, ["code", "message"]),
    "Error": _obj({"error": _ref("ErrorBody")}, ["error"]),
    "OpenAIError": _obj(
        {
            "error": _obj(
                {"message": STRING, "type": STRING, "param": NULLABLE_STRING, "code": NULLABLE_STRING},
                ["message", "type"],
            )
        },
        ["error"],
    ),
    "OpenAIMessage": _obj(
        {
            "role": {
                "type": "string",
                "enum": ["system", "developer", "user", "assistant", "tool", "function"],
            },
            "content": TEXT_OR_PARTS,
            "name": STRING,
            "tool_calls": {"type": "array", "items": {"type": "object"}},
            "tool_call_id": STRING,
        },
        ["role"],
    ),
    "ChatCompletionRequest": _obj(
        {
            "model": {"type": "string", "description": "A bot's public id (GET /v1/models)."},
            "messages": {"type": "array", "items": _ref("OpenAIMessage"), "minItems": 1},
            "stream": {"type": "boolean", "nullable": True},
            "stream_options": _obj({"include_usage": BOOLEAN}, nullable=True),
            "temperature": {"type": "number", "minimum": 0, "maximum": 2, "nullable": True},
            "max_tokens": {
                "type": "integer",
                "minimum": 1,
                "nullable": True,
                "description": "At most the bot's max_output_tokens.",
            },
            "max_completion_tokens": {"type": "integer", "minimum": 1, "nullable": True},
            "stop": {"oneOf": [STRING, {"type": "array", "items": STRING, "maxItems": 4}], "nullable": True},
            "user": {"type": "string", "nullable": True},
            "n": {**ANY_VALUE, "description": "Only 1."},
            "top_p": {**ANY_VALUE, "description": "Only 1."},
            "tools": {**ANY_VALUE, "description": "Refused unless empty: bots call no tools."},
            "response_format": {**ANY_VALUE, "description": 'Only {"type": "text"}.'},
        },
        ["model", "messages"],
        description="Parameters not listed here are refused with 400 unsupported_parameter.",
    ),
    "ChatCompletion": _obj(
        {
            "id": STRING,
            "object": {"type": "string", "enum": ["chat.completion"]},
            "created": INTEGER,
            "model": STRING,
            "choices": {
                "type": "array",
                "items": _obj(
                    {
                        "index": INTEGER,
                        "message": _obj({"role": STRING, "content": STRING, "refusal": NULLABLE_STRING}),
                        "finish_reason": {"type": "string", "enum": ["stop", "length", "error"]},
                    }
                ),
            },
            "usage": _obj({"prompt_tokens": INTEGER, "completion_tokens": INTEGER, "total_tokens": INTEGER}),
            "sources": {"type": "array", "items": _ref("ChatSource")},
            "parlor_conversation_id": STRING,
            "parlor_message_id": {"type": "integer", "nullable": True},
        }
    ),
    "ResponseRequest": _obj(
        {
            "model": {"type": "string", "description": "A bot's public id."},
            "input": {"oneOf": [STRING, {"type": "array", "items": {"type": "object"}, "minItems": 1}]},
            "instructions": {"type": "string", "nullable": True},
            "stream": {"type": "boolean", "nullable": True},
            "temperature": {"type": "number", "minimum": 0, "maximum": 2, "nullable": True},
            "max_output_tokens": {"type": "integer", "minimum": 1, "nullable": True},
            "user": {"type": "string", "nullable": True},
        },
        ["model", "input"],
        description="Parameters not listed here are refused with 400 unsupported_parameter.",
    ),
    "Response": _obj(
        {
            "id": STRING,
            "object": {"type": "string", "enum": ["response"]},
            "created_at": INTEGER,
            "status": {"type": "string", "enum": ["completed", "incomplete", "failed", "in_progress"]},
            "model": STRING,
            "output": {"type": "array", "items": {"type": "object"}},
            "usage": _obj(
                {"input_tokens": INTEGER, "output_tokens": INTEGER, "total_tokens": INTEGER}, nullable=True
            ),
            "incomplete_details": {"type": "object", "nullable": True},
            "error": {"type": "object", "nullable": True},
        }
    ),
    "Model": _obj(
        {
            "id": STRING,
            "object": {"type": "string", "enum": ["model"]},
            "created": INTEGER,
            "owned_by": STRING,
            "name": STRING,
        }
    ),
    "ModelList": _obj(
        {"object": {"type": "string", "enum": ["list"]}, "data": {"type": "array", "items": _ref("Model")}}
    ),
}

# Each event's data is JSON (an object; OpenAI's streams end with the text "[DONE]"): any value.
SSE = {"text/event-stream": {"schema": {"description": "Server-Sent Events, one JSON value per event."}}}


def _errors(schema: str, *codes: int) -> Schema:
    text = {400: "Bad request or unsupported parameter", 401: "No or bad API key",
            403: "Key may not use this bot, or is read-only", 404: "No such bot (model)", 405: "Wrong method",
            409: "An answer is still streaming in this conversation", 413: "Message too long",
            429: "Rate limited (Retry-After)", 503: "Bot paused or no model available"}  # fmt: skip
    return {str(code): {"description": text[code], "content": _json(_ref(schema))} for code in codes}


CHAT_ERRORS = (400, 401, 403, 404, 409, 413, 429, 503)


def _operation(operation_id: str, tag: str, summary: str, description: str, **rest: Any) -> Schema:
    return {"operationId": operation_id, "tags": [tag], "summary": summary, "description": description,
            "security": [{"ApiKey": []}], **rest}  # fmt: skip


PATHS: dict[str, Schema] = {
    "/api/v1/bots/{public_id}/messages": {
        "post": _operation(
            "chat_message_create",
            "chat",
            "Send a message to a bot",
            "Answered as JSON, or as Server-Sent Events (accepted, delta*, sources, done; error) with "
            '"stream": true or Accept: text/event-stream.',
            parameters=[{"name": "public_id", "in": "path", "required": True, "schema": STRING}],
            requestBody={"required": True, "content": _json(_ref("ChatMessageRequest"))},
            responses={
                "200": {
                    "description": "The answer",
                    "content": {**_json(_ref("ChatMessageResponse")), **SSE},
                },
                **_errors("Error", *CHAT_ERRORS),
            },
        ),
    },
    "/v1/chat/completions": {
        "post": _operation(
            "openai_chat_completions",
            "openai",
            "OpenAI-compatible chat completions",
            "model = a bot's public id. finish_reason: stop, length (the token limit), error (interrupted).",
            requestBody={"required": True, "content": _json(_ref("ChatCompletionRequest"))},
            responses={
                "200": {
                    "description": "A completion, or chunks when streaming",
                    "content": {**_json(_ref("ChatCompletion")), **SSE},
                },
                **_errors("OpenAIError", *CHAT_ERRORS, 405),
            },
        ),
    },
    "/v1/responses": {
        "post": _operation(
            "openai_responses_create",
            "openai",
            "OpenAI Responses API (text)",
            "Text in and out; streamed as response.* events. No stored responses (previous_response_id).",
            requestBody={"required": True, "content": _json(_ref("ResponseRequest"))},
            responses={
                "200": {
                    "description": "A response, or its events when streaming",
                    "content": {**_json(_ref("Response")), **SSE},
                },
                **_errors("OpenAIError", *CHAT_ERRORS, 405),
            },
        ),
    },
    "/v1/models": {
        "get": _operation(
            "openai_models_list",
            "openai",
            "The bots this key may use, as models",
            "OpenAI's model list.",
            responses={
                "200": {"description": "Models", "content": _json(_ref("ModelList"))},
                **_errors("OpenAIError", 401, 405),
            },
        ),
    },
    "/v1/models/{model}": {
        "get": _operation(
            "openai_models_retrieve",
            "openai",
            "One bot as a model",
            "404 model_not_found for other bots.",
            parameters=[{"name": "model", "in": "path", "required": True, "schema": STRING}],
            responses={
                "200": {"description": "Model", "content": _json(_ref("Model"))},
                **_errors("OpenAIError", 401, 404, 405),
            },
        ),
    },
}


def add_chat_endpoints(result: Schema, generator: Any, request: Any, public: bool) -> Schema:
    """drf-spectacular postprocessing hook: the chat endpoints' paths and components."""
    result.setdefault("components", {}).setdefault("schemas", {}).update(COMPONENTS)
    result.setdefault("paths", {}).update(PATHS)
    return result
