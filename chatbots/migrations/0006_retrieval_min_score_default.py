from django.db import migrations, models
import django.core.validators


def zero_is_default(apps, schema_editor):
    # 0 meant "keep every passage"; the measured per-model threshold replaces it.
    apps.get_model("chatbots", "Bot").objects.filter(retrieval_min_score=0.0).update(retrieval_min_score=None)


def default_is_zero(apps, schema_editor):
    apps.get_model("chatbots", "Bot").objects.filter(retrieval_min_score=None).update(retrieval_min_score=0.0)


class Migration(migrations.Migration):
    dependencies = [("chatbots", "0005_api_key_bot_limits")]

    operations = [
        migrations.AlterField(
            model_name="bot",
            name="retrieval_min_score",
            field=models.FloatField(
                blank=True,
                null=True,
                help_text="Passages less relevant than this (0–1) are not used; when none is left, the bot says its knowledge does not cover the question. Empty: the threshold measured for the embedding model.",
                validators=[django.core.validators.MinValueValidator(0.0), django.core.validators.MaxValueValidator(1.0)],
            ),
        ),
        migrations.RunPython(zero_is_default, default_is_zero),
    ]
