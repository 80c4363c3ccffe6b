"""The one rule for untrusted input, applied where input enters Parlor.

Refused, with a 400 (an error frame on the socket) before any app code sees it:
- text PostgreSQL cannot store (a NUL character) or that is no Unicode at all (a lone surrogate, which
  JSON's ``\\ud800`` escape can carry), in any string, key or value;
- JSON nested deeper than ``MAX_JSON_DEPTH`` (deeper still, the parser itself runs out of stack);
- JSON's non-standard ``NaN`` and ``Infinity``, which a ``jsonb`` column refuses.

Text Parlor extracts itself, from an uploaded document or a fetched page, is cleaned instead
(``clean_text``): a customer cannot fix the glyph table of a PDF, and one NUL must not fail a whole file.

Where it is applied, once per transport:
- HTTP paths and query strings of every view: ``InputRuleMiddleware``;
- REST API bodies: the DRF parsers in ``config.api_parsers`` (``DEFAULT_PARSER_CLASSES``);
- chat JSON, SSE and OpenAI-compatible bodies, and chat socket frames: ``loads``;
- the chat socket's query string: ``check``;
- ingested text: ``clean_text`` where parsed blocks become chunks and where FAQ CSVs are read.

Plumbing below the apps: imports none of them.
"""

from __future__ import annotations

import json
import re
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.utils.deprecation import MiddlewareMixin

from config.errors import ApplicationError, error_response

MAX_JSON_DEPTH = 32

_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


class BadInput(ApplicationError):
    code = "bad_input"
    http_status = 400
    default_message = "The request contains characters or structure that cannot be accepted."


NUL_MESSAGE = "Text may not contain NUL characters (\\u0000)."
SURROGATE_MESSAGE = "Text may not contain unpaired surrogates (\\ud800-\\udfff): send valid UTF-8."
DEPTH_MESSAGE = f"JSON may be nested at most {MAX_JSON_DEPTH} levels deep."


def check_text(text: str) -> None:
    """Refuse a string PostgreSQL cannot store or that is not valid Unicode."""
    if "\x00" in text:
        raise BadInput(NUL_MESSAGE)
    if not text.isascii() and _LONE_SURROGATE.search(text):
        raise BadInput(SURROGATE_MESSAGE)


def check(value: Any) -> None:
    """Refuse ``value`` (a parsed JSON document, a query dict, ...) if any string in it, key or value, breaks
    the rule or it nests deeper than ``MAX_JSON_DEPTH``. Iterative, so no input can exhaust the stack."""
    pending: list[tuple[Any, int]] = [(value, 0)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, str):
            check_text(item)
        elif isinstance(item, dict | list | tuple):
            if depth >= MAX_JSON_DEPTH:
                raise BadInput(DEPTH_MESSAGE)
            if isinstance(item, dict):
                pending.extend((key, depth) for key in item)
                item = item.values()
            pending.extend((child, depth + 1) for child in item)


def _refuse_constant(name: str) -> Any:
    raise BadInput(f"JSON numbers must be finite ({name} is not JSON).")


def loads(raw: bytes | str) -> Any:
    """``json.loads`` for untrusted input: the rule holds for the result, and every problem is a
    ``BadInput`` (or ``ValueError`` for plain malformed JSON, which callers already turn into a 400)."""
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise BadInput("JSON must be encoded as UTF-8.") from None
    elif not raw.isascii() and _LONE_SURROGATE.search(raw):
        raise BadInput(SURROGATE_MESSAGE)
    try:
        value = json.loads(raw, parse_constant=_refuse_constant)
    except RecursionError:
        raise BadInput(DEPTH_MESSAGE) from None
    check(value)
    return value


def clean_text(text: str) -> str:
    """Text extracted from a document, made storable: NULs dropped, lone surrogates replaced by U+FFFD."""
    text = text.replace("\x00", "")
    if not text.isascii():
        text = _LONE_SURROGATE.sub("\ufffd", text)
    return text


class InputRuleMiddleware(MiddlewareMixin):
    """Every HTTP request's path and query string pass the rule before URL resolution or any view: a NUL
    in ``/api/v1/bots/x%00/`` or ``?kind=%00`` would otherwise reach PostgreSQL and fail there (a 500).
    Bodies are checked by the parsers that read them (``config.api_parsers``, the chat views' ``loads``).
    ``MiddlewareMixin`` keeps it async-capable, so streamed chat answers are not pushed through a thread."""

    def process_request(self, request: HttpRequest) -> HttpResponse | None:
        try:
            check_text(request.path_info)
            check(dict(request.GET.lists()))
        except BadInput as exc:
            return error_response(exc)
        return None
