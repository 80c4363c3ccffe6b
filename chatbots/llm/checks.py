"""Start-up checks: a malformed price table or unusable encryption keys stop ``manage.py check``/deploys."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import Error, register

from chatbots.llm.pricing import PriceTableError, parse_price_table


@register()
def check_llm_settings(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    errors = []
    try:
        parse_price_table(getattr(settings, "LLM_PRICES", ""))
    except PriceTableError as exc:
        errors.append(
            Error(str(exc), hint='Example: LLM_PRICES={"my-model": [0.15, 0.6]}', id="chatbots.E001")
        )
    short = [key for key in getattr(settings, "FIELD_ENCRYPTION_KEYS", []) if key and len(key) < 16]
    if short:
        errors.append(
            Error(
                "FIELD_ENCRYPTION_KEYS contains a key shorter than 16 characters.",
                hint="Use Fernet keys: python -c 'from cryptography.fernet import Fernet; "
                "print(Fernet.generate_key().decode())'",
                id="chatbots.E002",
            )
        )
    return errors
