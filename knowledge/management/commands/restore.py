"""``manage.py restore DIRECTORY``: load a backup into an empty deployment (docs/operations.md)."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from config.backup import BackupError, backup_restore
from knowledge.services import knowledge_versions_bump_all


class Command(BaseCommand):
    help = (
        "Restore a backup written by `manage.py backup` into this deployment: its database must be empty "
        "(created, not migrated) and its storage must not hold the backup's files yet."
    )

    def add_arguments(self, parser):
        parser.add_argument("directory", type=Path, help="The backup's directory.")

    def handle(self, *args, directory: Path, **options):
        try:
            manifest = backup_restore(source=directory, log=self.stdout.write)
        except BackupError as exc:
            raise CommandError(str(exc)) from None
        # Redis is not part of a backup: answers cached before the restore must not be served after it.
        knowledge_versions_bump_all()
        self.stdout.write(
            self.style.SUCCESS(f"Restored the backup of {manifest.created_at} from {directory}")
        )
