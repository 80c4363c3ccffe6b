"""Serializers that read request bodies refuse fields they do not know.

DRF drops unknown fields silently, so a typo is a silent change of meaning: ``{"bots": [...]}`` instead of
``{"bot_ids": [...]}`` once created an API key for every bot. Every serializer that reads input (each
app's ``api/serializers.py``) derives from ``InputSerializer`` or ``InputModelSerializer``; an unknown
field is a 400 that names it. Read-only fields are known (a client may send back what it read); they are
ignored as before.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rest_framework import serializers

UNKNOWN_FIELD = "Unknown field."
# Not input: a browser's form post (session authentication) carries Django's CSRF token.
NOT_INPUT = frozenset({"csrfmiddlewaretoken"})


# No docstrings on these classes: drf-spectacular would show them as every input's description.
class RefuseUnknownFields:
    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, Mapping):  # also a QueryDict (form and multipart bodies)
            fields = self.fields  # type: ignore[attr-defined]
            unknown = sorted(str(name) for name in data if name not in fields and name not in NOT_INPUT)
            if unknown:
                raise serializers.ValidationError({name: [UNKNOWN_FIELD] for name in unknown})
        return super().to_internal_value(data)  # type: ignore[misc]


class InputSerializer(RefuseUnknownFields, serializers.Serializer):
    pass


class InputModelSerializer(RefuseUnknownFields, serializers.ModelSerializer):
    pass
