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
    # An FAQ source: its title is not indexed (a text source's is, so renaming that one re-ingests it).
    source = make_source(organization=org, kind="faq", title="Notes", status="processing")

    def worker_finishes(request, object_id, *args, **kwargs):  # between the admin's read and its save
        found = original(request, object_id, *args, **kwargs)
        Source.objects.filter(pk=source.pk).update(status="ready", progress=100, chunk_count=2)
        return found

    from knowledge.admin import SourceAdmin

    original = SourceAdmin.get_object
    monkeypatch.setattr(SourceAdmin, "get_object", worker_finishes)
    url = reverse("admin:knowledge_source_change", args=[source.pk])
    response = client.post(url, _form(title="Shop notes", kind="faq"))
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
            "page_count": 0,
        }
    }
    changelist = client.get(reverse("admin:knowledge_source_changelist"))
    assert f'data-source-status="{mine.pk}"' in changelist.content.decode()
    assert f'data-source-count="{mine.pk}" data-field="chunk_count"' in changelist.content.decode()
    assert f'data-source-status="{theirs.pk}"' not in changelist.content.decode()


def test_outsider_cannot_open_or_delete_another_organizations_source(client):
    org, other = make_organization(), make_organization()
    theirs = make_source(organization=other, kind=SourceKind.TEXT, text="secret")
    client.force_login(owner_of(org))
    assert client.get(reverse("admin:knowledge_source_change", args=[theirs.pk])).status_code in (302, 404)
    client.post(reverse("admin:knowledge_source_delete", args=[theirs.pk]), {"post": "yes"})
    assert Source.objects.filter(pk=theirs.pk).exists()


def test_owner_who_is_no_superuser_edits_faq_pairs_in_the_admin(
    client, django_capture_on_commit_callbacks, monkeypatch
):
    org = make_organization()
    owner = owner_of(org)
    assert not owner.is_superuser
    source = make_source(organization=org, kind=SourceKind.FAQ, title="FAQ", status="ready")
    kept = FaqPair.objects.create(organization=org, source=source, question="Hours?", answer="9-18")
    gone = FaqPair.objects.create(organization=org, source=source, question="Old?", answer="Yes")
    client.force_login(owner)
    url = reverse("admin:knowledge_source_change", args=[source.pk])
    inlines = client.get(url).context["inline_admin_formsets"]
    assert [formset.formset.prefix for formset in inlines] == ["faq_pairs"]  # the FAQ editor is there
    queued = []
    monkeypatch.setattr("knowledge.tasks.source_ingest_task.delay", lambda pk: queued.append(pk))
    data = _form(kind="faq", title="FAQ")
    data.update({
        "faq_pairs-TOTAL_FORMS": "3", "faq_pairs-INITIAL_FORMS": "2",
        "faq_pairs-0-id": kept.pk, "faq_pairs-0-source": source.pk,
        "faq_pairs-0-question": "Opening hours?", "faq_pairs-0-answer": "9-18",
        "faq_pairs-1-id": gone.pk, "faq_pairs-1-source": source.pk,
        "faq_pairs-1-question": "Old?", "faq_pairs-1-answer": "Yes", "faq_pairs-1-DELETE": "on",
        "faq_pairs-2-source": source.pk, "faq_pairs-2-question": "Ship abroad?", "faq_pairs-2-answer": "Yes.",
    })  # fmt: skip
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(url, data)
    assert response.status_code == 302, response.content[:3000]
    assert sorted(FaqPair.objects.filter(source=source).values_list("question", "organization_id")) == [
        ("Opening hours?", org.pk),
        ("Ship abroad?", org.pk),
    ]
    assert queued == [source.pk]  # changed pairs are re-ingested, as through the API
    assert Source.objects.get(pk=source.pk).status == "queued"


def test_the_faq_editor_does_not_accept_another_organizations_pair(client, monkeypatch):
    org, other = make_organization(), make_organization()
    source = make_source(organization=org, kind=SourceKind.FAQ, title="FAQ", status="ready")
    theirs = make_source(organization=other, kind=SourceKind.FAQ, title="Theirs")
    foreign = FaqPair.objects.create(organization=other, source=theirs, question="Secret?", answer="Yes")
    monkeypatch.setattr("knowledge.tasks.source_ingest_task.delay", lambda pk: None)
    client.force_login(owner_of(org))
    data = _form(kind="faq", title="FAQ")
    data.update({
        "faq_pairs-TOTAL_FORMS": "1", "faq_pairs-INITIAL_FORMS": "1",
        "faq_pairs-0-id": foreign.pk, "faq_pairs-0-source": source.pk,
        "faq_pairs-0-question": "Hijacked?", "faq_pairs-0-answer": "No",
    })  # fmt: skip
    response = client.post(reverse("admin:knowledge_source_change", args=[source.pk]), data)
    assert response.status_code == 200  # the form is shown again with an error
    assert FaqPair.objects.get(pk=foreign.pk).question == "Secret?"
    assert not FaqPair.objects.filter(source=source).exists()
