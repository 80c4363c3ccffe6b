from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models


class Migration(migrations.Migration):
    atomic = False  # built concurrently: the inbox stays usable while a big table is indexed

    dependencies = [
        ("chatbots", "0022_leads_and_identity"),
    ]

    operations = [
        AddIndexConcurrently(
            model_name="conversation",
            index=models.Index(
                fields=["organization", "channel", "-last_message_at"], name="conversation_org_channel"
            ),
        ),
    ]
