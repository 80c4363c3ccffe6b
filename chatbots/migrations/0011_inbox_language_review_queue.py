"""The inbox's language filter and the review queue: the visitor's language on a conversation, each
question's vector (for grouping similar questions), each answer's retrieval score and resolved state.

The new columns have constant defaults or are nullable (no table rewrite); the review queue's partial
index is built concurrently so a deployment with millions of messages keeps chatting while it builds.
"""

import pgvector.django.vector
from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ('accounts', '0004_remove_apikey_bot_ids'),
        ("chatbots", "0010_query_rewrite_and_search_query"),
    ]

    operations = [
        migrations.CreateModel(
            name='ReviewQueueEntry',
            fields=[
            ],
            options={
                'verbose_name': 'review queue',
                'verbose_name_plural': 'review queue',
                'proxy': True,
                'indexes': [],
                'constraints': [],
            },
            bases=('chatbots.message',),
        ),
        migrations.AddField(
            model_name='conversation',
            name='language',
            field=models.CharField(blank=True, default='', max_length=8),
        ),
        migrations.AddField(
            model_name='message',
            name='question_embedding',
            field=pgvector.django.vector.VectorField(blank=True, dimensions=384, editable=False, null=True),
        ),
        migrations.AddField(
            model_name='message',
            name='retrieval_score',
            field=models.FloatField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='message',
            name='reviewed_at',
            field=models.DateTimeField(blank=True, null=True),
        ),
        AddIndexConcurrently(
            model_name='message',
            index=models.Index(condition=models.Q(('reviewed_at__isnull', True), ('role', 'assistant')), fields=['organization', '-created_at'], name='message_review_open'),
        ),
    ]
