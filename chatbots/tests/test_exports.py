"""Conversation exports: the inbox's filtered set as CSV or JSON Lines, written by a Celery job, downloaded
through a link that expires; spreadsheet formulas are escaped."""

from __future__ import annotations

import csv
import io
import json
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import Role
from accounts.tests.factories import add_member, make_organization, owner_of
from chatbots.exports import (
    conversation_export_build,
    conversation_export_request,
    conversation_exports_purge,
    csv_cell,
)
from chatbots.models import Conversation, ConversationExport, ExportStatus, MessageRole
from chatbots.selectors import InboxFilters
from chatbots.tests.factories import make_api_key, make_bot, make_conversation, make_message

INBOX = "/admin/chatbots/conversation/"
EXPORTS = "/admin/chatbots/conversationexport/"
SOURCE = {"source_id": 1, "title": "FAQ", "url": None, "page": None, "snippet": "…"}


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path


def _exchange(bot, *, question: str, answer: str = "An answer.", **answer_fields) -> Conversation:
    conversation = make_conversation(bot=bot, visitor_id=f"v-{question[:6]}")
    make_message(conversation=conversation, role=MessageRole.USER, text=question)
    make_message(
        conversation=conversation, role=MessageRole.ASSISTANT, text=answer, sources=[SOURCE], **answer_fields
    )
    return conversation


def _content(export: ConversationExport) -> str:
    with export.file.open("rb") as handle:
        return handle.read().decode()


@pytest.mark.django_db
def test_csv_export_has_the_filtered_messages_with_formulas_escaped() -> None:
    organization = make_organization(name="Acme")
    bot = make_bot(organization=organization, name="Helper")
    down = _exchange(bot, question='=HYPERLINK("http://evil.example","click")', answer="-1 is wrong", feedback="down",
                     feedback_comment="@SUM(A1)")  # fmt: skip
    _exchange(bot, question="A question nobody rated")
    _exchange(make_bot(name="Foreign"), question="Foreign question", feedback="down")

    export = conversation_export_request(
        organization=organization,
        user=owner_of(organization),
        filters=InboxFilters(feedback="down"),
        format="csv",
    )
    built = conversation_export_build(export_id=export.pk)
    assert built.status == ExportStatus.READY and built.progress == 100
    assert (built.conversation_count, built.message_count) == (1, 2)
    assert built.expires_at > timezone.now() + timedelta(hours=23)
    rows = list(csv.DictReader(io.StringIO(_content(built))))
    assert [r["conversation_id"] for r in rows] == [str(down.pk)] * 2
    assert rows[0]["text"] == '\'=HYPERLINK("http://evil.example","click")'
    assert rows[1]["text"] == "'-1 is wrong" and rows[1]["feedback_comment"] == "'@SUM(A1)"
    assert rows[1]["sources"] == "FAQ" and rows[1]["feedback"] == "down"
    assert conversation_export_build(export_id=export.pk) is None  # a second run (re-delivery) does nothing


def test_csv_cell_escapes_every_formula_prefix() -> None:
    for value in ("=1+1", "+1", "-1", "@A1", "\t=1", "\r=1"):
        assert csv_cell(value) == "'" + value
    assert csv_cell("Hello = world") == "Hello = world" and csv_cell(None) == "" and csv_cell(3) == "3"


@pytest.mark.django_db
def test_jsonl_export_has_one_conversation_with_its_messages_per_line() -> None:
    organization = make_organization(name="Acme")
    bot = make_bot(organization=organization)
    first, second = (
        _exchange(bot, question="Where is my parcel?"),
        _exchange(bot, question="Do you sell tents?"),
    )
    export = conversation_export_request(
        organization=organization, user=None, filters=InboxFilters(), format="jsonl"
    )
    lines = [
        json.loads(line) for line in _content(conversation_export_build(export_id=export.pk)).splitlines()
    ]
    assert {line["conversation_id"] for line in lines} == {str(first.pk), str(second.pk)}
    assert all([m["role"] for m in line["messages"]] == ["user", "assistant"] for line in lines)


@pytest.mark.django_db
def test_owner_exports_the_inbox_as_filtered_and_downloads_it_until_it_expires(client) -> None:
    organization = make_organization(name="Acme")
    bot = make_bot(organization=organization)
    down = _exchange(bot, question="Where is my parcel?", feedback="down")
    _exchange(bot, question="Do you sell tents?")
    client.force_login(add_member(organization=organization, role=Role.ADMIN))

    assert "data-export" in client.get(INBOX).content.decode()
    response = client.post(f"{INBOX}export/?feedback=down&q=parcel", {"format": "csv"})
    assert response.status_code == 302 and response["Location"] == EXPORTS
    export = ConversationExport.objects.get(organization=organization)
    assert export.filters["feedback"] == "down" and export.filters["search"] == "parcel"
    assert (
        "Queued" in client.get(EXPORTS).content.decode() or "queued" in client.get(EXPORTS).content.decode()
    )

    conversation_export_build(export_id=export.pk)
    download = f"{EXPORTS}{export.pk}/download/"
    assert download in client.get(EXPORTS).content.decode()
    response = client.get(download)
    assert response.status_code == 200 and response["Content-Disposition"].startswith("attachment")
    assert str(down.pk) in b"".join(response.streaming_content).decode()

    ConversationExport.objects.filter(pk=export.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert client.get(download).status_code == 410
    assert conversation_exports_purge() == 1
    export.refresh_from_db()
    assert not export.file and client.get(download).status_code == 410


@pytest.mark.django_db
def test_member_cannot_export_and_nobody_downloads_another_organizations_export(client) -> None:
    organization = make_organization(name="Acme")
    _exchange(make_bot(organization=organization), question="Where is my parcel?")
    other = make_organization(name="Other")
    foreign = conversation_export_request(organization=other, user=None, filters=InboxFilters(), format="csv")
    conversation_export_build(export_id=foreign.pk)
    client.force_login(add_member(organization=organization, role=Role.MEMBER))
    assert "data-export" not in client.get(INBOX).content.decode()
    assert client.post(f"{INBOX}export/", {"format": "csv"}).status_code == 403
    assert not ConversationExport.objects.filter(organization=organization).exists()
    client.force_login(owner_of(organization))
    assert client.get(f"{EXPORTS}{foreign.pk}/download/").status_code == 404


@pytest.mark.django_db
def test_api_export_with_a_signed_link_that_expires(client, settings) -> None:
    organization = make_organization(name="Acme")
    mine, other = make_bot(organization=organization, name="Mine"), make_bot(organization=organization)
    visible = _exchange(mine, question="Mine?", feedback="down")
    _exchange(other, question="Other bot?", feedback="down")
    limited = make_api_key(mine, bots=[mine]).key
    auth = {"HTTP_AUTHORIZATION": f"Bearer {limited}"}

    started = client.post("/api/v1/conversations/export/", {"feedback": "down", "format": "jsonl"},
                          content_type="application/json", **auth)  # fmt: skip
    assert started.status_code == 202 and started.json()["download_url"] is None
    export_id = started.json()["id"]
    conversation_export_build(export_id=export_id)  # what the Celery job does
    detail = client.get(f"/api/v1/exports/{export_id}/", **auth).json()
    assert detail["status"] == "ready" and detail["conversation_count"] == 1  # only the key's bot
    url = detail["download_url"]
    file = client.get(url)  # the signed link is the credential: no API key needed
    assert file.status_code == 200 and str(visible.pk) in b"".join(file.streaming_content).decode()
    assert client.get(url.replace("/download/", "/download/x")).status_code == 404

    wide = make_api_key(
        mine
    ).key  # another key of the organization, unlimited, may read it; a foreign key not
    assert client.get(f"/api/v1/exports/{export_id}/", HTTP_AUTHORIZATION=f"Bearer {wide}").status_code == 200
    foreign = make_api_key(make_bot(name="Foreign")).key
    assert (
        client.get(f"/api/v1/exports/{export_id}/", HTTP_AUTHORIZATION=f"Bearer {foreign}").status_code == 404
    )

    ConversationExport.objects.filter(pk=export_id).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert client.get(url).status_code == 410


def test_export_job_runs_on_a_real_worker(celery_worker, settings, tmp_path) -> None:
    organization = make_organization(name="Acme")
    _exchange(make_bot(organization=organization), question="Where is my parcel?")
    export = conversation_export_request(
        organization=organization, user=None, filters=InboxFilters(), format="csv"
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        export.refresh_from_db()
        if export.status == ExportStatus.READY:
            break
        time.sleep(0.2)
    assert export.status == ExportStatus.READY and export.message_count == 2
