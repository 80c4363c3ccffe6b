"""Ingestion on a real Celery worker: status transitions, duplicate tasks, failures, deletion."""

from __future__ import annotations

import time

import pytest
from django.core.files.base import ContentFile

from knowledge.models import Chunk, Source, SourceKind
from knowledge.services import source_create, source_delete
from knowledge.tasks import source_ingest_task
from knowledge.tests.factories import make_organization, make_pdf

pytestmark = pytest.mark.django_db(transaction=True)


def _wait_for(source_id: int, statuses=("ready", "failed"), timeout: float = 60) -> Source:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        source = Source.objects.get(pk=source_id)
        if source.status in statuses:
            return source
        time.sleep(0.1)
    raise AssertionError(f"source {source_id} still {source.status} after {timeout}s")


def test_uploaded_pdf_becomes_ready_with_pages_and_counts(celery_worker, media):
    pdf = make_pdf(["Boots can be returned within 30 days.", "Shipping to Austria takes two days."])
    source = source_create(
        organization=make_organization(),
        kind=SourceKind.FILE,
        title="Guide",
        file=ContentFile(pdf, name="guide.pdf"),
    )
    source = _wait_for(source.pk)
    assert source.status == "ready", source.status_reason
    assert (source.chunk_count, source.page_count, source.progress) == (1, 2, 100)
    assert source.token_count > 0 and source.synced_at is not None
    chunk = Chunk.objects.get(source=source)
    assert chunk.page == 1 and chunk.embedding is not None and chunk.search_vector


def test_duplicated_tasks_never_duplicate_chunks(celery_worker):
    text = "\n\n".join(f"Section {i}: " + "boots and laces " * 30 for i in range(6))
    source = source_create(organization=make_organization(), kind=SourceKind.TEXT, title="Notes", text=text)
    for _ in range(3):
        source_ingest_task.delay(source.pk)
    time.sleep(0.5)
    source = _wait_for(source.pk)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # let the extra deliveries finish too
        time.sleep(1)
        if (
            Source.objects.get(pk=source.pk).status == "ready"
            and not celery_worker.consumer.controller.state.active_requests
        ):
            break
    source.refresh_from_db()
    ordinals = list(Chunk.objects.filter(source=source).values_list("ordinal", flat=True))
    assert len(ordinals) == source.chunk_count > 1
    assert sorted(ordinals) == list(range(len(ordinals)))


def test_corrupt_file_fails_with_its_reason(celery_worker, media):
    source = source_create(
        organization=make_organization(), kind=SourceKind.FILE, title="Broken",
        file=ContentFile(b"%PDF-1.7\n\x00garbage", name="broken.pdf"),
    )  # fmt: skip
    source = _wait_for(source.pk)
    assert source.status == "failed"
    assert "damaged" in source.status_reason
    assert not Chunk.objects.filter(source=source).exists()


def test_deleting_a_source_removes_its_chunks_and_file(celery_worker, media):
    source = source_create(
        organization=make_organization(), kind=SourceKind.FILE, title="Notes",
        file=ContentFile(b"Opening hours: nine to five.", name="notes.txt"),
    )  # fmt: skip
    source = _wait_for(source.pk)
    path = media / source.file.name
    assert path.exists() and Chunk.objects.filter(source=source).exists()
    source_delete(source=source)
    assert not path.exists()
    assert not Chunk.objects.filter(source_id=source.pk).exists()
