"""``manage.py backup DIRECTORY``: the database and every stored file, consistently (docs/operations.md)."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from config.backup import BackupError, backup_create


class Command(BaseCommand):
    help = (
        "Back up the database (pg_dump, pgvector data included) and the stored files (local disk or object "
        "storage) into a new directory; restore it with `manage.py restore`."
    )

    def add_arguments(self, parser):
        parser.add_argument("directory", type=Path, help="A new (or empty) directory to write the backup to.")

    def handle(self, *args, directory: Path, **options):
        try:
            manifest = backup_create(target=directory, log=self.stdout.write)
        except BackupError as exc:
            raise CommandError(str(exc)) from None
        if manifest.missing_files:
            self.stderr.write(
                f"Deleted while copying (not in the backup): {', '.join(manifest.missing_files)}"
            )
        self.stdout.write(self.style.SUCCESS(f"Backup written to {directory}"))
