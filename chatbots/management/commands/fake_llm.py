"""``manage.py fake_llm --port 8199``: the local OpenAI-compatible test server, for trying things by hand."""

from __future__ import annotations

import asyncio
import contextlib

from django.core.management.base import BaseCommand

from chatbots.llm.testserver import FakeLLMServer


class Command(BaseCommand):
    requires_system_checks: list[str] = []  # no database, no settings to check: start at once
    help = "Serve a scriptable OpenAI-compatible API (chat completions, embeddings, models) for testing."

    def add_arguments(self, parser):  # type: ignore[no-untyped-def]
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8199)
        parser.add_argument("--api-key", default=None, help="Require this bearer key (default: accept any).")

    def handle(self, *args, **options):  # type: ignore[no-untyped-def]
        server = FakeLLMServer(host=options["host"], port=options["port"], api_key=options["api_key"])

        async def run() -> None:
            listener = await server.serve()
            self.stdout.write(f"Fake LLM API on {server.base_url} (Ctrl+C to stop)")
            self.stdout.flush()
            async with listener:
                await listener.serve_forever()

        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(run())
