"""Structured logs an operator can follow: who and what each log line is about.

Context variables carry the request id, organization, bot, conversation and Celery task ids of the work in
progress; ``ContextFilter`` copies them onto every record, ``JsonFormatter`` writes one JSON object per line
(production) and the plain format shows them in brackets (development). The request id comes from the
``X-Request-ID`` header when a well-formed one arrives (``RequestIdMiddleware``), travels into Celery tasks as
a message header (config.celery) and back out in the response.

By default no message text and no secrets are logged: Parlor's own log calls carry ids and figures only,
and ``RedactingFilter`` masks anything shaped like a key or a bearer token that a library might still log.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import HttpRequest, HttpResponse

FIELDS = ("request_id", "organization_id", "bot_id", "conversation_id", "task_id")
_vars: dict[str, contextvars.ContextVar[str | None]] = {
    name: contextvars.ContextVar(f"parlor_{name}", default=None) for name in FIELDS
}
REQUEST_ID_HEADER = "X-Request-ID"
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{8,128}$")  # anything else is replaced, never logged as is
request_logger = logging.getLogger("parlor.request")


def new_request_id() -> str:
    return uuid.uuid4().hex


def valid_request_id(value: str | None) -> str | None:
    return value if value and _REQUEST_ID.match(value) else None


def bind(**values: object) -> None:
    """Set some of FIELDS for the rest of the current context (task, thread or request)."""
    for name, value in values.items():
        _vars[name].set(None if value is None else str(value))


def current() -> dict[str, str]:
    """The fields set in this context."""
    return {name: value for name, var in _vars.items() if (value := var.get()) is not None}


def clear() -> None:
    for var in _vars.values():
        var.set(None)


@contextmanager
def bound(**values: object) -> Iterator[None]:
    """FIELDS set for the duration of a block, restored afterwards."""
    tokens = [
        (_vars[name], _vars[name].set(None if value is None else str(value)))
        for name, value in values.items()
    ]
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


class ContextFilter(logging.Filter):
    """Adds FIELDS to every record (None where they do not apply)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, var in _vars.items():
            if not hasattr(record, name):
                setattr(record, name, var.get())
        context = " ".join(f"{name.removesuffix('_id')}={getattr(record, name)}" for name in FIELDS
                           if getattr(record, name))  # fmt: skip
        record.context = f" [{context}]" if context else ""
        return True


# Provider keys (sk-…), Parlor API keys (prl_…), bearer tokens, passwords and secrets in URLs or key=value.
_SECRETS = [
    (re.compile(r"\b(sk|rk|pk)-[A-Za-z0-9_-]{12,}"), r"\1-[redacted]"),
    (re.compile(r"\bprl_[A-Za-z0-9]{8}_[A-Za-z0-9]+"), "prl_[redacted]"),
    (re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/=-]{8,}"), r"\1 [redacted]"),
    (re.compile(r"(?i)(://[^/\s:@]+:)[^@\s/]+@"), r"\1[redacted]@"),
    (
        re.compile(r"(?i)\b(api[_-]?key|password|secret|token)(['\"]?\s*[:=]\s*['\"]?)[^\s'\",}]+"),
        r"\1\2[redacted]",
    ),
]


def redact(text: str) -> str:
    for pattern, replacement in _SECRETS:
        text = pattern.sub(replacement, text)
    return text


class RedactingFilter(logging.Filter):
    """Masks secrets in the final message of every record (also those of third-party libraries)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


# Attributes every LogRecord has; anything else passed with ``extra=`` goes into the JSON object.
_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime", "context"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, the context FIELDS and any ``extra``."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and value is not None:
                data[key] = value if isinstance(value, str | int | float | bool) else str(value)
        if record.exc_info:
            data["exception"] = redact(self.formatException(record.exc_info))
        return json.dumps(data, default=str)


class RequestIdMiddleware:
    """Gives each HTTP request an id (the caller's ``X-Request-ID`` when well-formed), returns it in the
    response, and logs one line per request: method, route, status and duration (no path, query or body)."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        if iscoroutinefunction(self):
            return self.__acall__(request)
        request_id = self._start(request)
        started = time.monotonic()
        response = self.get_response(request)
        return self._finish(request, response, request_id, started)

    async def __acall__(self, request: HttpRequest) -> Any:
        request_id = self._start(request)
        started = time.monotonic()
        response = await self.get_response(request)
        return self._finish(request, response, request_id, started)

    def _start(self, request: HttpRequest) -> str:
        clear()
        request_id = valid_request_id(request.headers.get(REQUEST_ID_HEADER)) or new_request_id()
        request.request_id = request_id  # type: ignore[attr-defined]
        bind(request_id=request_id)
        return request_id

    def _finish(self, request: HttpRequest, response: HttpResponse, request_id: str, started: float) -> Any:
        response[REQUEST_ID_HEADER] = request_id
        # The route, not the path: paths carry tokens (invitations, export downloads, e-mail confirmation).
        match = getattr(request, "resolver_match", None)
        route = f"/{match.route}" if match is not None and match.route else "(unresolved)"
        request_logger.info(
            "%s %s %s", request.method, route, response.status_code,
            extra={"method": request.method, "route": route, "status": response.status_code,
                   "duration_ms": int((time.monotonic() - started) * 1000)},
        )  # fmt: skip
        return response


def _sentry_event(event: dict[str, Any], hint: dict[str, Any]) -> dict[str, Any]:
    """Tag an error event with the context ids and keep message text and secrets out of it: no request
    body, cookies or query string, no local variables, and secrets masked in messages and exceptions."""
    event.setdefault("tags", {}).update(current())
    request = event.get("request")
    if isinstance(request, dict):
        for key in ("data", "cookies", "query_string"):
            request.pop(key, None)
        headers = request.get("headers")
        if isinstance(headers, dict):
            request["headers"] = {
                k: v for k, v in headers.items() if k.lower() not in ("authorization", "cookie")
            }
    logentry = event.get("logentry")
    if isinstance(logentry, dict):
        for key in ("message", "formatted"):
            if isinstance(logentry.get(key), str):
                logentry[key] = redact(logentry[key])
    for exception in (event.get("exception") or {}).get("values", []):
        if isinstance(exception.get("value"), str):
            exception["value"] = redact(exception["value"])
    return event


def sentry_init(*, dsn: str, environment: str, traces_sample_rate: float) -> None:
    """Send errors of web, WebSocket and Celery processes to Sentry (or a compatible service)."""
    import sentry_sdk
    from sentry_sdk.integrations.celery import CeleryIntegration
    from sentry_sdk.integrations.django import DjangoIntegration

    sentry_sdk.init(
        dsn=dsn,
        environment=environment,
        traces_sample_rate=traces_sample_rate,
        send_default_pii=False,
        include_local_variables=False,  # locals hold questions, answers and keys
        max_request_body_size="never",
        before_send=_sentry_event,
        integrations=[DjangoIntegration(), CeleryIntegration()],
    )
