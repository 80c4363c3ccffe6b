"""Cost per answer from a per-model price table that an operator can extend.

Prices are US dollars per one million tokens (input, output). ``LLM_PRICES`` (or ``LLM_PRICES_FILE``)
holds JSON such as ``{"my-model": [0.15, 0.60]}``; its entries override and extend the built-in table.
A model is matched exactly first, then by the longest known prefix ("gpt-4o-mini-2024-07-18" costs what
"gpt-4o-mini" costs), so dated snapshots need no entry of their own.
"""

from __future__ import annotations

import json
from decimal import Decimal
from functools import lru_cache

from django.conf import settings

from chatbots.llm.events import Usage

MILLION = Decimal(1_000_000)

BUILTIN_PRICES: dict[str, tuple[str, str]] = {
    "gpt-4o-mini": ("0.15", "0.60"),
    "gpt-4o": ("2.50", "10.00"),
    "gpt-4.1-nano": ("0.10", "0.40"),
    "gpt-4.1-mini": ("0.40", "1.60"),
    "gpt-4.1": ("2.00", "8.00"),
    "gpt-5-nano": ("0.05", "0.40"),
    "gpt-5-mini": ("0.25", "2.00"),
    "gpt-5": ("1.25", "10.00"),
    "o4-mini": ("1.10", "4.40"),
    "claude-3-5-haiku": ("0.80", "4.00"),
    "claude-haiku-4-5": ("1.00", "5.00"),
    "claude-sonnet-4": ("3.00", "15.00"),
    "claude-3-7-sonnet": ("3.00", "15.00"),
    "gemini-2.0-flash": ("0.10", "0.40"),
    "gemini-2.5-flash": ("0.30", "2.50"),
    "gemini-2.5-pro": ("1.25", "10.00"),
    "mistral-small": ("0.10", "0.30"),
    "mistral-large": ("2.00", "6.00"),
    "llama-3.1-8b-instant": ("0.05", "0.08"),
    "llama-3.3-70b-versatile": ("0.59", "0.79"),
}


class PriceTableError(ValueError):
    pass


def parse_price_table(raw: str) -> dict[str, tuple[Decimal, Decimal]]:
    """Parse the operator's JSON price table; raise ``PriceTableError`` naming what is wrong."""
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise PriceTableError(f"LLM_PRICES is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise PriceTableError('LLM_PRICES must be a JSON object like {"model": [input, output]}')
    table: dict[str, tuple[Decimal, Decimal]] = {}
    for model, pair in data.items():
        if not (isinstance(pair, list | tuple) and len(pair) == 2):
            raise PriceTableError(f"LLM_PRICES[{model!r}] must be [input_usd_per_1m, output_usd_per_1m]")
        try:
            prices = (Decimal(str(pair[0])), Decimal(str(pair[1])))
        except ArithmeticError:
            raise PriceTableError(f"LLM_PRICES[{model!r}] must contain numbers") from None
        if prices[0] < 0 or prices[1] < 0:
            raise PriceTableError(f"LLM_PRICES[{model!r}] must not be negative")
        table[model] = prices
    return table


@lru_cache(maxsize=8)
def _table(raw: str) -> dict[str, tuple[Decimal, Decimal]]:
    table = {model: (Decimal(i), Decimal(o)) for model, (i, o) in BUILTIN_PRICES.items()}
    table.update(parse_price_table(raw))
    return table


def price_table() -> dict[str, tuple[Decimal, Decimal]]:
    return _table(getattr(settings, "LLM_PRICES", ""))


def price_for(model: str) -> tuple[Decimal, Decimal] | None:
    table = price_table()
    name = model.rsplit("/", 1)[-1] if model not in table else model  # "openai/gpt-4o" on OpenRouter
    if name in table:
        return table[name]
    prefixes = [known for known in table if name.startswith(known)]
    return table[max(prefixes, key=len)] if prefixes else None


def estimate_cost(model: str, usage: Usage) -> Decimal | None:
    """US dollars for one answer, or None for a model missing from the table (unknown, not free)."""
    prices = price_for(model)
    if prices is None:
        return None
    cost = (usage.prompt_tokens * prices[0] + usage.completion_tokens * prices[1]) / MILLION
    return cost.quantize(Decimal("0.000001"))
