from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROBE = (
    "import json, django; django.setup(); from django.conf import settings; "
    "print(json.dumps({'apps': settings.INSTALLED_APPS, 'providers': settings.SOCIALACCOUNT_PROVIDERS}))"
)


def _settings(**env: str) -> dict:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SOCIAL_")}
    result = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=ROOT,
        env={
            **clean,
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "DATABASE_URL": "postgres://probe@127.0.0.1:1/probe",
            "REDIS_URL": "redis://127.0.0.1:6379/11",
            **env,
        },
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_social_login_is_off_without_credentials():
    config = _settings()
    assert config["providers"] == {}
    assert not any(app.startswith("allauth.socialaccount.providers.") for app in config["apps"])


def test_github_login_is_switched_on_by_env_vars():
    config = _settings(SOCIAL_GITHUB_CLIENT_ID="gh-id", SOCIAL_GITHUB_SECRET="gh-secret")
    assert "allauth.socialaccount.providers.github" in config["apps"]
    assert config["providers"]["github"]["APPS"] == [{"client_id": "gh-id", "secret": "gh-secret"}]
    assert "google" not in config["providers"]
