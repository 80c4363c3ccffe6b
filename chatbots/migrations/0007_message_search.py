"""Full-text search over message text for the conversation inbox: a GIN index on the "simple" tsvector.

Built concurrently: on a deployment with millions of messages a plain CREATE INDEX would block writes
(visitors' chats) for as long as it takes.
"""

import django.contrib.postgres.indexes
import django.contrib.postgres.search
from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("accounts", "0004_remove_apikey_bot_ids"),
        ("chatbots", "0006_retrieval_min_score_default"),
    ]

    operations = [
        AddIndexConcurrently(
            model_name="message",
            index=django.contrib.postgres.indexes.GinIndex(
                django.contrib.postgres.search.SearchVector("text", config="simple"),
                name="message_text_search",
            ),
        ),
    ]
