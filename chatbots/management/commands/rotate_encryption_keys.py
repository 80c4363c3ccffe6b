"""``manage.py rotate_encryption_keys``: re-encrypt stored provider keys with the newest key."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from chatbots.services import bot_rotate_encryption
from knowledge.services import transcription_settings_rotate_encryption


class Command(BaseCommand):
    help = (
        "Re-encrypt every bot's provider API keys (and organizations' transcription keys) with the first key of FIELD_ENCRYPTION_KEYS. Run it after "
        "putting a new key first; then the old keys can be removed."
    )

    def handle(self, *args, **options):  # type: ignore[no-untyped-def]
        changed = bot_rotate_encryption()
        self.stdout.write(f"Re-encrypted the provider keys of {changed} bot(s).")
        changed = transcription_settings_rotate_encryption()
        self.stdout.write(f"Re-encrypted the transcription keys of {changed} organization(s).")
