"""Operations settings: object storage and logs are chosen by environment, with safe production values."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parents[2]
PRODUCTION = {
    "DEBUG": "false",
    "SECRET_KEY": secrets.token_urlsafe(64),
    "ALLOWED_HOSTS": "parlor.example.com",
}
SHOW = (
    "from django.conf import settings; from django.core.files.storage import storages; s = storages['default']; "
    "print(settings.LOG_FORMAT, type(s).__name__, getattr(s, 'bucket_name', '-'), getattr(s, 'default_acl', '-'), "
    "getattr(s, 'querystring_expire', '-'))"
)


def _shell(**env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "manage.py", "shell", "-c", SHOW], cwd=BASE_DIR,
                          env={**os.environ, **env}, capture_output=True, text=True, timeout=120)  # fmt: skip


def test_production_logs_json_and_stores_files_in_a_private_bucket() -> None:
    result = _shell(**PRODUCTION, S3_BUCKET="parlor-files", S3_ENDPOINT_URL="http://127.0.0.1:9")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[-5:] == ["json", "S3Storage", "parlor-files", "private", "300"]


def test_development_logs_plain_lines_and_stores_files_on_disk() -> None:
    result = _shell(DEBUG="true")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[-5:] == ["plain", "FileSystemStorage", "-", "-", "-"]


def test_production_refuses_long_lived_signed_links_and_a_bucketless_s3() -> None:
    long_links = _shell(**PRODUCTION, S3_BUCKET="parlor-files", S3_SIGNED_URL_SECONDS="86400")
    assert long_links.returncode != 0 and "S3_SIGNED_URL_SECONDS" in long_links.stderr
    no_bucket = _shell(**PRODUCTION, STORAGE_BACKEND="s3")
    assert no_bucket.returncode != 0 and "needs S3_BUCKET" in no_bucket.stderr
