"""DRF's parsers with the input rule (``config.input_rules``) applied to every body the REST API reads.

Kept apart from config/input_rules.py, as config/api_errors.py is from config/errors.py: the rule itself
serves transports that have nothing to do with DRF (the chat socket, ingestion).
"""

from __future__ import annotations

from typing import Any

from rest_framework import parsers

from config.input_rules import check, loads


class JSONParser(parsers.JSONParser):
    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        try:
            return loads(stream.read())
        except ValueError as exc:
            raise parsers.ParseError(f"JSON parse error - {exc}") from None


class FormParser(parsers.FormParser):
    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        data = super().parse(stream, media_type, parser_context)
        check(dict(data.lists()))
        return data


class MultiPartParser(parsers.MultiPartParser):
    """Form fields pass the rule; file names are already sanitized by Django, and file contents are cleaned
    where text is extracted from them (``knowledge.services``)."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        result = super().parse(stream, media_type, parser_context)
        check(dict(result.data.lists()))
        return result
