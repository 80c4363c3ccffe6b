"""``manage.py knowledge_reembed``: switch the index to the configured (or given) embedding model."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from knowledge.embedders import active_model_name, configured_model_name
from knowledge.services import embeddings_rebuild


class Command(BaseCommand):
    help = (
        "Re-embed every chunk with the configured embedding model (EMBEDDING_BACKEND/EMBEDDING_MODEL) or "
        "--model; the current vectors keep serving until the new ones are complete."
    )

    def add_arguments(self, parser):
        parser.add_argument("--model", default=None, help="Model name (default: the configured one).")
        parser.add_argument(
            "--force", action="store_true", help="Re-embed even if the model is already active."
        )
        parser.add_argument("--batch-size", type=int, default=64)

    def handle(self, *args, model, force, batch_size, **options):
        target = model or configured_model_name()
        active = active_model_name()
        if target == active and not force:
            self.stdout.write(
                f"The index already uses {active}; nothing to do (use --force to re-embed anyway)."
            )
            return
        self.stdout.write(f"Re-embedding with {target} (serving {active} until done)...")
        count = embeddings_rebuild(model=target, batch_size=batch_size, log=self.stdout.write)
        self.stdout.write(self.style.SUCCESS(f"Done: {count} chunks now use {target}."))
