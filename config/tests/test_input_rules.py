"""The input rule itself (config/input_rules.py); the transports are walked by
chatbots/tests/test_bad_input.py and config/tests/test_api_fuzz.py."""

from __future__ import annotations

import pytest

from config.input_rules import MAX_JSON_DEPTH, BadInput, check, check_text, clean_text, loads


@pytest.mark.parametrize("text", ["a\x00b", "\x00", "a\ud800b", "\udfff", "é\udc80"])
def test_text_postgresql_cannot_store_or_that_is_no_unicode_is_refused(text) -> None:
    with pytest.raises(BadInput):
        check_text(text)


@pytest.mark.parametrize("text", ["", "plain", "Grüße 👋 日本", "\ufffd", "emoji pair \U0001f600"])
def test_ordinary_text_passes(text) -> None:
    check_text(text)


def test_check_walks_keys_values_and_lists_at_any_depth() -> None:
    check({"a": [{"b": "ok"}, 1, 2.5, None, True]})
    for bad in ({"a\x00": 1}, {"a": ["x", {"b": "\ud800"}]}, [[["\x00"]]]):
        with pytest.raises(BadInput):
            check(bad)


def test_nesting_is_limited_without_recursion() -> None:
    def nested(depth: int) -> list:
        value: list = []
        for _ in range(depth - 1):
            value = [value]
        return value

    check(nested(MAX_JSON_DEPTH))
    with pytest.raises(BadInput, match="nested"):
        check(nested(MAX_JSON_DEPTH + 1))
    with pytest.raises(BadInput, match="nested"):
        check(nested(50_000))  # built directly: deeper than any parser could go


@pytest.mark.parametrize(
    "raw",
    [
        b'{"a": "\\u0000"}',
        '{"a": "\\ud800"}',
        '{"\\udc00": 1}',
        "[" * 100_000 + "]" * 100_000,
        '{"a": NaN}',
        '{"a": -Infinity}',
        b'{"a": "caf\xe9"}',
        '"\ud800"',
    ],
    ids=[
        "nul",
        "surrogate-escape",
        "surrogate-key",
        "past-the-parser",
        "nan",
        "infinity",
        "latin-1",
        "raw-surrogate",
    ],
)
def test_loads_refuses_with_bad_input(raw) -> None:
    with pytest.raises(BadInput):
        loads(raw)


def test_loads_leaves_malformed_json_to_the_callers_value_error() -> None:
    with pytest.raises(ValueError):
        loads("{not json")
    assert loads(b'{"a": ["\\ud83d\\ude00", 1.5]}') == {"a": ["\U0001f600", 1.5]}  # a surrogate pair is fine


def test_clean_text_drops_nul_and_replaces_lone_surrogates() -> None:
    assert clean_text("Ship\x00ping \ud800days") == "Shipping \ufffddays"
    assert clean_text("Grüße \U0001f600") == "Grüße \U0001f600"


def test_middleware_refuses_nul_in_paths_and_query_strings(client) -> None:
    for url in ("/healthz?x=%00", "/healthz?%00=1", "/api/v1/bots/a%00/", "/admin/%00"):
        response = client.get(url)
        assert response.status_code == 400, url
        assert response.json()["error"]["code"] == "bad_input"
    assert client.get("/healthz?x=caf%C3%A9").status_code == 200
