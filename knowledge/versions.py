"""A version number of each organization's knowledge, kept in Redis.

Anything that changes what an organization's bots could answer from (a source added, re-ingested, edited or
deleted, an FAQ pair added) bumps it after commit. Caches of answers built from that knowledge
(chatbots.answer_cache) put the version in their keys, so a change makes every older entry unreachable at
once, in every process, without knowing which bots use which source.
"""

from __future__ import annotations

import redis
from django.conf import settings
from django.db import transaction

from config.redis_clients import sync_redis_client


def knowledge_version_key(organization_id: int) -> str:
    return f"parlor:knowledge-version:{organization_id}"


def sync_redis() -> redis.Redis:
    """A blocking Redis client for services (the chat pipeline has its asyncio client)."""
    return sync_redis_client(settings.REDIS_URL)


def knowledge_changed(*, organization_id: int) -> None:
    """Bump the organization's knowledge version once the current transaction commits (right away outside
    one): a reader who sees the new version also sees the new rows."""
    transaction.on_commit(lambda: sync_redis().incr(knowledge_version_key(organization_id)))
