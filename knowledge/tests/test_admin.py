from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from accounts.tests.factories import make_organization, owner_of
from knowledge.models import FaqPair, Source, SourceKind
from knowledge.tests.factories import make_source

pytestmark = pytest.mark.django_db

INLINE = {"faq_pairs-TOTAL_FORMS": "0", "faq_pairs-INITIAL_FORMS": "0"}


def _form(**fields):
    data = {
        "title": "Notes",
        "kind": "text",
        "max_pages": "50",
        "max_depth": "3",
        "resync_hours": "0",
        **INLINE,
    }
    data.update(fields)
    return data


def test_owner_adds_a_text_source_and_its_ingestion_is_queued(
    client, django_capture_on_commit_callbacks, monkeypatch
):
    org = make_organization()
    client.force_login(owner_of(org))
    queued = []
    monkeypatch.setattr("knowledge.tasks.source_ingest_task.delay", lambda pk: queued.append(pk))
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("admin:knowledge_source_add"), _form(text="We open at nine."))
    assert response.status_code == 302, response.content[:2000]
    source = Source.objects.get()
    assert source.organization == org and source.status == "queued"
    assert queued == [source.pk]


def test_faq_pairs_are_imported_from_csv(client, django_capture_on_commit_callbacks, monkeypatch):
    org = make_organization()
    client.force_login(owner_of(org))
    monkeypatch.setattr("knowledge.tasks.source_ingest_task.delay", lambda pk: None)
    upload = SimpleUploadedFile(
        "faq.csv", b"question,answer\nDo you ship abroad?,Yes.\nOpening hours?,9-18\n"
    )
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("admin:knowledge_source_add"), _form(kind="faq", title="FAQ", faq_csv=upload)
        )
    assert response.status_code == 302
    assert list(FaqPair.objects.values_list("question", "organization_id")) == [
        ("Do you ship abroad?", org.pk),
        ("Opening hours?", org.pk),
    ]


def test_an_edit_keeps_what_a_running_ingestion_wrote_meanwhile(client, monkeypatch):
    org = make_organization()
    client.force_login(owner_of(org))
    source = make_source(organization=org, title="Notes", text="We open at nine.", status="processing")

    def worker_finishes(request, object_id, *args, **kwargs):  # between the admin's read and its save
        found = original(request, object_id, *args, **kwargs)
        Source.objects.filter(pk=source.pk).update(status="ready", progress=100, chunk_count=2)
        return found

    from knowledge.admin import SourceAdmin

    original = SourceAdmin.get_object
    monkeypatch.setattr(SourceAdmin, "get_object", worker_finishes)
    url = reverse("admin:knowledge_source_change", args=[source.pk])
    response = client.post(url, _form(title="Shop notes", text="We open at nine."))
    assert response.status_code == 302, response.content[:2000]
    stored = Source.objects.get(pk=source.pk)
    assert (stored.title, stored.status, stored.chunk_count) == ("Shop notes", "ready", 2)


def test_unsupported_upload_is_refused_in_the_form(client):
    org = make_organization()
    client.force_login(owner_of(org))
    upload = SimpleUploadedFile("tool.exe", b"MZ")
    response = client.post(reverse("admin:knowledge_source_add"), _form(kind="file", file=upload))
    assert response.status_code == 200
    assert not Source.objects.exists()


def test_status_endpoint_shows_progress_of_own_sources_only(client):
    org, other = make_organization(), make_organization()
    mine = make_source(organization=org, status="processing", progress=42)
    theirs = make_source(organization=other, status="processing", progress=7)
    client.force_login(owner_of(org))
    response = client.get(reverse("admin:knowledge_source_status"), {"ids": f"{mine.pk},{theirs.pk}"})
    assert response.json() == {
        str(mine.pk): {
            "status": "processing",
            "label": "Processing",
            "progress": 42,
            "reason": "",
            "chunk_count": 0,
            "token_count": 0,
        }
    }
    changelist = client.get(reverse("admin:knowledge_source_changelist"))
    assert f'data-source-status="{mine.pk}"' in changelist.content.decode()
    assert f'data-source-status="{theirs.pk}"' not in changelist.content.decode()


def test_outsider_cannot_open_or_delete_another_organizations_source(client):
    org, other = make_organization(), make_organization()
    theirs = make_source(organization=other, kind=SourceKind.TEXT, text="secret")
    client.force_login(owner_of(org))
    assert client.get(reverse("admin:knowledge_source_change", args=[theirs.pk])).status_code in (302, 404)
    client.post(reverse("admin:knowledge_source_delete", args=[theirs.pk]), {"post": "yes"})
    assert Source.objects.filter(pk=theirs.pk).exists()
