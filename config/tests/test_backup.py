"""Backups that restore: the embedded database (pgvector data included) and the stored files of a deployment
with a bot, knowledge and conversations are backed up, restored into a fresh database and media folder, and a
live Parlor on the restored deployment answers the same question with the same sources."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from asgiref.sync import async_to_sync
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.db import connection

from chatbots.services import source_set_bots
from chatbots.testing import database_url, start_daphne, stop
from chatbots.tests.factories import make_api_key, make_chat_bot, scripted
from config.asgi import application
from knowledge.models import SourceKind
from knowledge.services import source_create, source_ingest

BASE_DIR = Path(__file__).resolve().parents[2]
GUIDE = b"# Boot care\n\nWax leather boots once a month and dry them slowly, away from the fire.\n"
QUESTION = "How often should I wax leather boots?"
REPLY = "Once a month [1]."


def _ask(base_url: str, key: str, transport: httpx.BaseTransport | None = None) -> dict:
    async def post() -> dict:
        async with httpx.AsyncClient(transport=transport, base_url=base_url, timeout=60,
                                     headers={"Authorization": f"Bearer {key}"}) as http:  # fmt: skip
            response = await http.post(f"/api/v1/bots/{bot_public_id}/messages", json={"message": QUESTION})
            assert response.status_code == 200, response.text
            body = response.json()
            listing = await http.get(f"/api/v1/conversations/{body['conversation_id']}/messages")
            body["transcript"] = [m["text"] for m in listing.json()["results"]]
            return body

    return async_to_sync(post)()


bot_public_id = ""


def _manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "PARLOR_TEST_DB_NAME": "", **env}
    return subprocess.run([sys.executable, "manage.py", *args], cwd=BASE_DIR, env=full_env, capture_output=True,
                          text=True, timeout=300)  # fmt: skip


@pytest.fixture
def empty_database() -> str:
    """A new, empty database on the same server: the fresh deployment's. Dropped afterwards."""
    name = f"{connection.settings_dict['NAME']}_restored"
    with connection.cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        cursor.execute(f'CREATE DATABASE "{name}"')
    yield database_url({**connection.settings_dict, "NAME": name})
    with connection.cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.mark.django_db(transaction=True)
def test_a_restored_backup_answers_the_same_question_with_the_same_sources(
    llm_server, tmp_path, empty_database
) -> None:
    global bot_public_id
    bot = make_chat_bot(
        llm_server, model=scripted("fake", reply=REPLY.replace(" ", "+")), answer_style="mixed"
    )
    bot_public_id = bot.public_id
    guide = source_create(organization=bot.organization, kind=SourceKind.FILE,
                          file=SimpleUploadedFile("boot-care.md", GUIDE, content_type="text/markdown"))  # fmt: skip
    source_ingest(source_id=guide.pk)
    source_set_bots(source=guide, bots=[bot])
    key = make_api_key(bot).key
    before = _ask("http://testserver", key, httpx.ASGITransport(app=application))
    assert "boot-care.md" in [s["title"] for s in before["sources"]]

    call_command("backup", str(tmp_path / "backup"))
    assert (tmp_path / "backup" / "database.dump").stat().st_size > 0
    assert (tmp_path / "backup" / "files" / guide.file.name).read_bytes() == GUIDE

    fresh = {"DATABASE_URL": empty_database, "MEDIA_ROOT": str(tmp_path / "fresh-media")}
    restored = _manage("restore", str(tmp_path / "backup"), env=fresh)
    assert restored.returncode == 0, restored.stderr
    assert (tmp_path / "fresh-media" / guide.file.name).read_bytes() == GUIDE
    again = _manage("restore", str(tmp_path / "backup"), env=fresh)  # never over a deployment in use
    assert again.returncode != 0 and "not empty" in again.stderr

    llm_server.reset()
    proc, url, _ = start_daphne(fresh)
    try:
        after = _ask(url, key)
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}) as http:
            listing = http.get(f"/api/v1/conversations/{before['conversation_id']}/messages").json()
        earlier = [m["text"] for m in listing["results"]]
    finally:
        stop(proc)
    assert after["answer"] == before["answer"] == REPLY
    assert after["sources"] == before["sources"]
    assert after["conversation_id"] != before["conversation_id"]
    # The model was asked again (the answer cache does not survive a restore) with the restored passages.
    prompt = " ".join(str(m.get("content")) for r in llm_server.requests for m in r.messages)
    assert "Wax leather boots once a month" in prompt
    assert earlier == before["transcript"] == [QUESTION, REPLY]  # the earlier conversation came back too


@pytest.mark.django_db
def test_a_backup_refuses_a_directory_that_is_not_empty(tmp_path) -> None:
    (tmp_path / "something").write_text("x")
    with pytest.raises(CommandError, match="not empty"):
        call_command("backup", str(tmp_path))


@pytest.mark.django_db
def test_a_backup_copies_the_objects_of_s3_compatible_storage(object_storage, tmp_path) -> None:
    from accounts.tests.factories import make_organization

    source = source_create(organization=make_organization(), kind=SourceKind.FILE,
                           file=SimpleUploadedFile("boot-care.md", GUIDE))  # fmt: skip
    assert object_storage.keys() == [source.file.name]
    call_command("backup", str(tmp_path / "backup"))
    assert (tmp_path / "backup" / "files" / source.file.name).read_bytes() == GUIDE
