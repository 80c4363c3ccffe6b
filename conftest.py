"""Test-wide setup: real PostgreSQL + pgvector (embedded unless DATABASE_URL is set), real Redis."""

from __future__ import annotations

import os

from config.embedded import redis_answers

# Tests use their own Redis database so a running development Parlor (db 0) is neither read nor wiped.
if not os.environ.get("REDIS_URL") and redis_answers():
    os.environ["REDIS_URL"] = "redis://127.0.0.1:6379/15"
os.environ.setdefault("CHANNEL_LAYER_PREFIX", "parlor-test")

pytest_plugins = ["config.testing", "chatbots.tests.chat_support"]
