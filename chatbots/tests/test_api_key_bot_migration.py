"""The data migration from ``ApiKey.bot_ids`` (an array without a foreign key) to ``ApiKeyBotLimit``."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

BEFORE = [("accounts", "0003_member_verbose_name"), ("chatbots", "0004_bot_sources")]
AFTER = [("accounts", "0004_remove_apikey_bot_ids"), ("chatbots", "0005_api_key_bot_limits")]


def _migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


@pytest.mark.django_db(transaction=True)
def test_bot_ids_become_limits_and_a_key_of_deleted_bots_stays_limited():
    old = _migrate(BEFORE)
    Organization = old.get_model("accounts", "Organization")
    ApiKey = old.get_model("accounts", "ApiKey")
    Bot = old.get_model("chatbots", "Bot")
    org = Organization.objects.create(name="Acme", slug="acme-migration")
    bot = Bot.objects.create(organization=org, name="a")

    def key(name, bot_ids):
        return ApiKey.objects.create(
            organization=org, name=name, prefix=f"prl_{name}", key_hash=name * 8, bot_ids=bot_ids
        ).pk

    limited, unlimited, orphaned = key("limited", [bot.pk]), key("every", []), key("orphan", [bot.pk + 999])
    new = _migrate(AFTER)
    limits = {
        limit.api_key_id: sorted(limit.bots.values_list("pk", flat=True))
        for limit in new.get_model("chatbots", "ApiKeyBotLimit").objects.all()
    }
    assert limits == {limited: [bot.pk], orphaned: []}
    _migrate(BEFORE)  # and back: the arrays are restored (a key limited to no bot keeps a limit)
    restored = dict(old.get_model("accounts", "ApiKey").objects.values_list("pk", "bot_ids"))
    assert restored == {limited: [bot.pk], unlimited: [], orphaned: [0]}
    _migrate_to_latest()


def _migrate_to_latest() -> None:
    """Leave the database as the other tests expect it: every migration applied, not only up to AFTER
    (later migrations of these apps would otherwise stay unapplied for the rest of the run)."""
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())
