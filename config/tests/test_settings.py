from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from config.env import env_bool, env_choice, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parents[2]


def _manage(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, **env}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=BASE_DIR,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    "secret_key",
    [
        "",
        "dev-insecure-parlor-secret-key-change-me",
        "short-key",
        "a" * 80,
        "django-insecure-" + "x1y2z3" * 10,
    ],
)
def test_production_refuses_default_or_weak_secret_key(secret_key: str) -> None:
    result = _manage("check", DEBUG="false", SECRET_KEY=secret_key, ALLOWED_HOSTS="parlor.example.com")
    assert result.returncode != 0
    assert "SECRET_KEY is missing or weak" in result.stderr


def test_production_refuses_empty_allowed_hosts() -> None:
    result = _manage("check", DEBUG="false", SECRET_KEY=secrets.token_urlsafe(64), ALLOWED_HOSTS="")
    assert result.returncode != 0
    assert "ALLOWED_HOSTS must be set" in result.stderr


def test_check_deploy_reports_nothing_with_production_settings() -> None:
    result = _manage(
        "check", "--deploy", "--fail-level", "WARNING",
        DEBUG="false", SECRET_KEY=secrets.token_urlsafe(64), ALLOWED_HOSTS="parlor.example.com",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "System check identified no issues" in result.stdout


def test_env_helpers_parse_and_fail_loudly(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PARLOR_T_BOOL", "yes")
    monkeypatch.setenv("PARLOR_T_INT", "42")
    monkeypatch.setenv("PARLOR_T_LIST", "a.example, b.example ,")
    assert env_bool("PARLOR_T_BOOL") is True
    assert env_int("PARLOR_T_INT", 1) == 42
    assert env_list("PARLOR_T_LIST") == ["a.example", "b.example"]
    monkeypatch.setenv("PARLOR_T_BOOL", "maybe")
    with pytest.raises(ImproperlyConfigured, match="PARLOR_T_BOOL must be a boolean"):
        env_bool("PARLOR_T_BOOL")
    monkeypatch.setenv("PARLOR_T_INT", "many")
    with pytest.raises(ImproperlyConfigured, match="PARLOR_T_INT must be an integer"):
        env_int("PARLOR_T_INT", 1)
    monkeypatch.setenv("PARLOR_T_CHOICE", " Rank ")
    assert env_choice("PARLOR_T_CHOICE", "score", ("score", "rank")) == "rank"
    monkeypatch.setenv("PARLOR_T_CHOICE", "rrf")
    with pytest.raises(ImproperlyConfigured, match="PARLOR_T_CHOICE must be one of score, rank; got 'rrf'"):
        env_choice("PARLOR_T_CHOICE", "score", ("score", "rank"))
    # A blank value (as in a copied .env.example) keeps the default.
    monkeypatch.setenv("PARLOR_T_BLANK", "  ")
    assert env_str("PARLOR_T_BLANK", "fallback") == "fallback"
    assert env_bool("PARLOR_T_BLANK", True) is True
    assert env_list("PARLOR_T_BLANK", ["x"]) == ["x"]
    assert env_choice("PARLOR_T_BLANK", "score", ("score", "rank")) == "score"


def test_secret_can_come_from_a_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_text("from-a-file\n")
    monkeypatch.setenv("PARLOR_T_SECRET", "from-env")
    monkeypatch.setenv("PARLOR_T_SECRET_FILE", str(secret_file))
    assert env_str("PARLOR_T_SECRET") == "from-a-file"
    monkeypatch.setenv("PARLOR_T_SECRET_FILE", str(tmp_path / "missing"))
    with pytest.raises(ImproperlyConfigured, match="PARLOR_T_SECRET_FILE"):
        env_str("PARLOR_T_SECRET")
