"""Knowledge sources over the REST API: add every kind for a bot, watch it become ready on a real Celery
worker, change, re-sync and delete it; clear 400s for bad input; keys and roles scoped."""

from __future__ import annotations

import io
import time

import pytest
from django.urls import reverse

from accounts.models import Role
from accounts.services import api_key_create
from accounts.tests.factories import add_member
from chatbots.selectors import bot_source_ids
from chatbots.services import api_key_set_bots
from chatbots.tests.factories import make_bot
from knowledge.models import Chunk, FaqPair, Source
from knowledge.retrieval import hybrid_search
from knowledge.tests.factories import make_organization, make_pdf, make_source

SOURCES = reverse("api-sources")


def bearer(organization, *, bots=None, **options) -> dict[str, str]:
    issued = api_key_create(organization=organization, name="test", **options)
    api_key_set_bots(api_key=issued.api_key, bots=bots)
    return {"HTTP_AUTHORIZATION": f"Bearer {issued.key}"}


def detail(source_id: int) -> str:
    return reverse("api-source", args=[source_id])


def wait_ready(client, headers, source_id: int, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = client.get(detail(source_id), **headers).json()
        if body["status"] in ("ready", "failed"):
            return body
        time.sleep(0.1)
    raise AssertionError(f"source {source_id} still {body['status']} after {timeout}s")


@pytest.mark.django_db(transaction=True)
def test_api_key_adds_text_pdf_and_faq_sources_that_a_bot_answers_from(client, celery_worker, media):
    org = make_organization(name="Acme")
    bot = make_bot(organization=org, name="Support")
    headers = bearer(org)
    text = client.post(
        SOURCES,
        {"kind": "text", "text": "Boots can be returned within 30 days of delivery.", "bots": [bot.public_id]},
        content_type="application/json", **headers,
    )  # fmt: skip
    assert text.status_code == 201, text.content
    assert text.json()["status"] == "queued" and text.json()["bots"] == [bot.public_id]
    assert text.json()["title"] == "Boots can be returned within 30 days of delivery."
    pdf = io.BytesIO(make_pdf(["Shipping to Austria takes two days.", "Gift cards never expire."]))
    pdf.name = "shipping.pdf"
    upload = client.post(SOURCES, {"kind": "file", "file": pdf, "bots": [bot.public_id]}, **headers)
    assert upload.status_code == 201, upload.content
    assert upload.json()["file_name"] == "shipping.pdf" and upload.json()["title"] == "shipping.pdf"
    faq_csv = io.BytesIO(b"question,answer\nDo you ship to Norway?,Yes within five days.\n")
    faq_csv.name = "faq.csv"
    faq = client.post(
        SOURCES, {"kind": "faq", "title": "FAQ", "faq_csv": faq_csv, "bots": [bot.public_id]}, **headers
    )
    assert faq.status_code == 201, faq.content
    assert faq.json()["faq_pairs"] == [
        {"question": "Do you ship to Norway?", "answer": "Yes within five days."}
    ]

    ready = {
        name: wait_ready(client, headers, r.json()["id"])
        for name, r in (("text", text), ("pdf", upload), ("faq", faq))
    }
    assert all(body["status"] == "ready" for body in ready.values()), ready
    assert ready["pdf"]["page_count"] == 2 and ready["pdf"]["chunk_count"] >= 1
    assert ready["text"]["token_count"] > 0 and ready["text"]["synced_at"]

    source_ids = bot_source_ids(bot=bot)
    assert sorted(source_ids) == sorted(r.json()["id"] for r in (text, upload, faq))
    found = hybrid_search(
        organization_id=org.pk, source_ids=source_ids, query="How long does shipping to Austria take?"
    )
    assert found and found[0].source_id == upload.json()["id"] and found[0].page == 1

    listed = client.get(SOURCES, {"bot": bot.public_id, "kind": "file"}, **headers).json()
    assert [row["id"] for row in listed["results"]] == [upload.json()["id"]]


def _file(name: str, content: bytes) -> io.BytesIO:
    handle = io.BytesIO(content)
    handle.name = name
    return handle


@pytest.mark.django_db
def test_bad_input_is_a_400_naming_the_field_and_stores_nothing(client, settings):
    settings.KNOWLEDGE_MAX_FILE_BYTES = 100
    org, other = make_organization(name="Acme"), make_organization(name="Other")
    foreign_bot = make_bot(organization=other, name="Theirs")
    headers = bearer(org)

    def refused(data: dict, multipart: bool = False) -> dict:
        options = {} if multipart else {"content_type": "application/json"}
        response = client.post(SOURCES, data, **options, **headers)
        assert response.status_code == 400, (data, response.content)
        return response.json()

    assert (
        "PDF, DOCX" in refused({"kind": "file", "file": _file("setup.exe", b"MZ")}, multipart=True)["file"][0]
    )
    assert (
        "larger than"
        in refused({"kind": "file", "file": _file("big.txt", b"x" * 101)}, multipart=True)["file"][0]
    )
    assert "file" in refused({"kind": "file", "title": "No file"})
    assert "url" in refused({"kind": "website", "title": "Site"})
    assert "url" in refused({"kind": "url", "url": "ftp://example.com/a"})
    assert "text" in refused({"kind": "text", "text": "   "})
    assert "faq_pairs" in refused({"kind": "faq", "title": "Empty FAQ", "faq_pairs": []})
    assert "faq_pairs" in refused(
        {"kind": "text", "text": "x", "faq_pairs": [{"question": "q", "answer": "a"}]}
    )
    assert "faq_csv" in refused({"kind": "faq", "faq_csv": _file("faq.csv", b"\n\n")}, multipart=True)
    assert (
        "larger than"
        in refused({"kind": "faq", "faq_csv": _file("faq.csv", b"q,a\n" * 30)}, multipart=True)["faq_csv"][0]
    )
    assert "resync_hours" in refused({"kind": "text", "text": "x", "resync_hours": 24})
    assert "max_pages" in refused({"kind": "website", "url": "https://example.com", "max_pages": 0})
    assert "kind" in refused({"kind": "spreadsheet", "text": "x"})
    unknown = refused({"kind": "text", "text": "x", "bots": ["nope", foreign_bot.public_id]})
    assert "nope" in unknown["bots"][0] and foreign_bot.public_id in unknown["bots"][0]
    assert not Source.objects.exists() and not foreign_bot.sources.exists()


@pytest.mark.django_db
def test_changes_reingest_only_when_the_content_changes(client, django_capture_on_commit_callbacks):
    org = make_organization(name="Acme")
    bot = make_bot(organization=org, name="Support")
    headers = bearer(org)
    source = make_source(organization=org, kind="faq", title="FAQ", status="ready", chunk_count=1)
    FaqPair.objects.create(organization=org, source=source, question="Old?", answer="Old.")

    def patch(data: dict) -> dict:
        with django_capture_on_commit_callbacks() as queued:
            response = client.patch(detail(source.pk), data, content_type="application/json", **headers)
        assert response.status_code == 200, response.content
        # Ingestion tasks queued after commit (other callbacks bump the answer cache's versions).
        ingests = [callback for callback in queued if "_enqueue_ingest" in callback.__qualname__]
        return {**response.json(), "queued": len(ingests)}

    renamed = patch({"title": "Shop FAQ", "bots": [bot.public_id]})
    assert (renamed["title"], renamed["status"], renamed["bots"], renamed["queued"]) == (
        "Shop FAQ",
        "ready",
        [bot.public_id],
        0,
    )
    replaced = patch({"faq_pairs": [{"question": "Do you ship to Norway?", "answer": "Yes."}]})
    assert replaced["status"] == "queued" and replaced["queued"] == 1
    assert list(source.faq_pairs.values_list("question", flat=True)) == ["Do you ship to Norway?"]
    assert patch({"bots": []})["bots"] == [] and not bot.sources.exists()
    kind = client.patch(detail(source.pk), {"kind": "text"}, content_type="application/json", **headers)
    assert kind.status_code == 400 and "kind" in kind.json()


@pytest.mark.django_db(transaction=True)
def test_resync_and_delete(client, celery_worker):
    org = make_organization(name="Acme")
    headers = bearer(org)
    created = client.post(SOURCES, {"kind": "text", "title": "Notes", "text": "Opening hours are nine to six."},
                          content_type="application/json", **headers)  # fmt: skip
    source_id = created.json()["id"]
    assert wait_ready(client, headers, source_id)["status"] == "ready"
    resync = client.post(reverse("api-source-resync", args=[source_id]), **headers)
    assert resync.status_code == 202 and resync.json()["status"] == "queued"
    assert wait_ready(client, headers, source_id)["chunk_count"] == 1
    assert client.delete(detail(source_id), **headers).status_code == 204
    assert client.get(detail(source_id), **headers).status_code == 404
    assert not Chunk.objects.filter(source_id=source_id).exists()


@pytest.mark.django_db
def test_keys_and_roles_are_scoped(client):
    org = make_organization(name="Acme")
    mine, theirs = (
        make_bot(organization=org, name="Mine"),
        make_bot(organization=org, name="Theirs"),
    )
    used = make_source(organization=org, title="Used by mine")
    used.bots.set([mine])
    make_source(organization=org, title="Used by theirs").bots.set([theirs])
    limited = bearer(org, bots=[mine])
    listed = client.get(SOURCES, **limited).json()["results"]
    assert [row["title"] for row in listed] == ["Used by mine"]
    for response in (
        client.post(SOURCES, {"kind": "text", "text": "x"}, content_type="application/json", **limited),
        client.patch(detail(used.pk), {"title": "x"}, content_type="application/json", **limited),
        client.delete(detail(used.pk), **bearer(org, read_only=True)),
    ):
        assert response.status_code == 403, response.content
    member = add_member(organization=org, role=Role.MEMBER)
    client.force_login(member)
    assert len(client.get(SOURCES).json()["results"]) == 2
    assert client.post(reverse("api-source-resync", args=[used.pk])).status_code == 403
    assert Source.objects.get(pk=used.pk).title == "Used by mine"


@pytest.mark.django_db
def test_a_change_does_not_overwrite_what_a_running_ingestion_wrote():
    from knowledge.services import source_update

    source = make_source(
        organization=make_organization(), kind="url", url="https://shop.example/notes", title="Notes",
        status="processing", progress=40,
    )  # fmt: skip
    stale = Source.objects.get(pk=source.pk)
    Source.objects.filter(pk=source.pk).update(
        status="ready", progress=100, chunk_count=3
    )  # the worker finished
    source_update(source=stale, data={"title": "Shop notes"})
    stored = Source.objects.get(pk=source.pk)
    assert (stored.title, stored.status, stored.progress, stored.chunk_count) == (
        "Shop notes",
        "ready",
        100,
        3,
    )


@pytest.mark.django_db
def test_renaming_a_text_source_indexes_it_again_under_its_new_title():
    from knowledge.services import source_update

    source = make_source(organization=make_organization(), title="Notes", status="ready", progress=100)
    source_update(source=source, data={"title": "Shop notes"})
    assert Source.objects.get(pk=source.pk).status == "queued"  # the title is part of what is indexed
