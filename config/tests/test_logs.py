"""Logs an operator can follow: JSON lines carrying the request id and the organization, bot and conversation
ids on web, WebSocket and Celery; no message text or secrets in them."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from threading import Thread

import httpx
import pytest
from asgiref.sync import sync_to_async
from django.conf import settings

from chatbots.testing import collect_answer, connect, database_url
from chatbots.tests.factories import make_api_key, make_chat_bot, scripted
from config import log_context
from config.asgi import application
from config.log_context import ContextFilter, JsonFormatter, RedactingFilter
from knowledge.models import SourceKind, SourceStatus
from knowledge.services import source_create

QUESTION = "My order 4471 never arrived, can you check it?"
REPLY = "Sorry to hear that, I am checking order 4471 now."
BASE_DIR = Path(__file__).resolve().parents[2]


@pytest.fixture
def json_logs() -> Iterator[io.StringIO]:
    """Everything logged at INFO and above while the test runs, as production writes it."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(ContextFilter())
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    yield stream
    root.removeHandler(handler)
    root.setLevel(level)


def lines(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


async def setup_bot(llm_server):
    model = scripted("fake", reply=REPLY.replace(" ", "+"))
    bot = await sync_to_async(make_chat_bot)(llm_server, model=model, answer_style="mixed")
    issued = await sync_to_async(make_api_key)(bot)
    return bot, issued.key


@pytest.mark.django_db(transaction=True)
async def test_an_http_answer_is_logged_with_its_request_and_tenant_ids_and_no_text(
    llm_server, json_logs
) -> None:
    bot, key = await setup_bot(llm_server)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=application), base_url="http://testserver",
                                 headers={"Authorization": f"Bearer {key}", "X-Request-ID": "req-web-0001"}) as http:  # fmt: skip
        response = await http.post(f"/api/v1/bots/{bot.public_id}/messages", json={"message": QUESTION})
    assert response.status_code == 200 and response.headers["X-Request-ID"] == "req-web-0001"
    conversation_id = response.json()["conversation_id"]
    records = lines(json_logs)
    answer = next(r for r in records if r["logger"] == "parlor.chat")
    assert answer["request_id"] == "req-web-0001"
    assert (answer["organization_id"], answer["bot_id"]) == (str(bot.organization_id), str(bot.pk))
    assert answer["conversation_id"] == conversation_id
    assert answer["status"] == "complete" and answer["completion_tokens"] > 0
    request_line = next(r for r in records if r["logger"] == "parlor.request")
    assert request_line["route"] == "/api/v1/bots/<str:public_id>/messages" and request_line["status"] == 200
    everything = json_logs.getvalue()
    for secret in (QUESTION, REPLY, "4471", key):
        assert secret not in everything


@pytest.mark.django_db(transaction=True)
async def test_a_socket_answer_is_logged_with_its_ids_and_no_text(llm_server, json_logs) -> None:
    bot, _ = await setup_bot(llm_server)
    await sync_to_async(lambda: bot.allowed_origins.append("https://shop.example") or bot.save())()
    communicator = await connect(bot, origin="https://shop.example")
    await communicator.receive_json_from()  # ready
    await communicator.send_json_to({"type": "message", "text": QUESTION})
    answer = await collect_answer(communicator)
    await communicator.disconnect()
    assert answer["text"] == REPLY
    line = next(r for r in lines(json_logs) if r["logger"] == "parlor.chat")
    assert line["conversation_id"] == answer["done"]["conversation_id"]
    assert line["bot_id"] == str(bot.pk) and len(line["request_id"]) == 32  # one id per socket
    assert QUESTION not in json_logs.getvalue() and REPLY not in json_logs.getvalue()


def test_a_celery_task_logs_with_the_request_id_it_was_queued_under(celery_worker, json_logs) -> None:
    from accounts.tests.factories import make_organization

    organization = make_organization()
    with log_context.bound(request_id="req-admin-upload-42"):
        source = source_create(
            organization=organization, kind=SourceKind.TEXT, title="Care", text="Wax leather boots monthly."
        )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        source.refresh_from_db()
        if source.status == SourceStatus.READY:
            break
        time.sleep(0.2)
    assert source.status == SourceStatus.READY
    line = next(r for r in lines(json_logs) if r.get("source_id") == source.pk)
    assert line["request_id"] == "req-admin-upload-42"  # carried in the task's headers
    assert line["organization_id"] == str(organization.pk) and line["task_id"]
    assert "Wax leather" not in json_logs.getvalue()


def test_secrets_are_masked_even_when_a_library_logs_them(json_logs) -> None:
    logger = logging.getLogger("some.library")
    logger.warning(
        "POST https://user:hunter2secret@api.example/v1 with Authorization: Bearer abcdefgh12345678"
    )
    logger.warning("provider key sk-proj-abcdefghijklmnop, parlor key prl_abcdefgh_%s", "x" * 40)
    logger.warning("config {'api_key': 'plain-secret-value', 'password': 'p4ssw0rd!'}")
    out = json_logs.getvalue()
    for secret in (
        "hunter2secret",
        "abcdefgh12345678",
        "abcdefghijklmnop",
        "x" * 40,
        "plain-secret-value",
        "p4ssw0rd",
    ):
        assert secret not in out
    assert out.count("[redacted]") >= 6


def test_a_malformed_request_id_is_replaced_not_logged(json_logs) -> None:
    from django.test import Client

    response = Client().get("/healthz", headers={"X-Request-ID": "bad id\nwith newline <script>"})
    assert response.headers["X-Request-ID"] != "bad id\nwith newline <script>"
    assert len(response.headers["X-Request-ID"]) == 32
    assert "<script>" not in json_logs.getvalue()


def test_development_logs_are_plain_lines_with_the_ids_in_brackets() -> None:
    assert settings.LOG_FORMAT == "plain"  # DEBUG is on in development and tests
    record = logging.LogRecord("parlor.chat", logging.INFO, __file__, 1, "answer complete", None, None)
    with log_context.bound(request_id="req-1", bot_id=7):
        ContextFilter().filter(record)
    formatter = logging.Formatter(settings.LOGGING["formatters"]["plain"]["format"])
    assert formatter.format(record).endswith("parlor.chat [request=req-1 bot=7]: answer complete")


class SentryIngest(BaseHTTPRequestHandler):
    """Accepts Sentry envelopes on loopback, as Sentry's ingest does."""

    envelopes: list[bytes] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        if self.headers.get("content-encoding") == "gzip":
            import gzip

            body = gzip.decompress(body)
        SentryIngest.envelopes.append(body)
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: object) -> None:
        pass


@pytest.mark.django_db
def test_errors_reach_sentry_tagged_with_ids_and_without_secrets() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), SentryIngest)
    Thread(target=server.serve_forever, daemon=True).start()
    dsn = f"http://publickey@127.0.0.1:{server.server_address[1]}/1"
    script = (
        "import django, logging, sentry_sdk; django.setup()\n"
        "from config import log_context\n"
        "with log_context.bound(request_id='req-sentry-1', organization_id=3):\n"
        "    try:\n"
        "        raise ValueError('provider refused key sk-live-abcdefghijklmnop')\n"
        "    except ValueError:\n"
        "        logging.getLogger('parlor.chat').exception('answer failed')\n"
        "sentry_sdk.flush(5)\n"
    )
    env = {**os.environ, "SENTRY_DSN": dsn, "DATABASE_URL": database_url(settings.DATABASES["default"])}
    try:
        result = subprocess.run([sys.executable, "-c", script], cwd=BASE_DIR, env=env, capture_output=True,
                                text=True, timeout=120)  # fmt: skip
    finally:
        server.shutdown()
    assert result.returncode == 0, result.stderr
    received = b"\n".join(SentryIngest.envelopes).decode()
    assert '"request_id":"req-sentry-1"' in received.replace(" ", "")
    assert "ValueError" in received and "abcdefghijklmnop" not in received
