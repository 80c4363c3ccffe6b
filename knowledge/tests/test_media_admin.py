"""The admin side of recordings: the transcript with its moments, length and cost, and an organization's
own transcription provider with its key encrypted."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.core.management import call_command
from django.urls import reverse

from accounts.tests.factories import make_organization, owner_of
from config.testing import PUBLIC_STAND_IN
from knowledge.models import SourceKind, Transcription, TranscriptionSettings
from knowledge.tests.factories import make_source

pytestmark = pytest.mark.django_db

SEGMENTS = [
    {"start": 0.0, "end": 5.0, "text": "Welcome to the webinar."},
    {"start": 252.4, "end": 259.0, "text": "Hold the blue valve button for ten seconds."},
]


def _recording(organization, **fields):
    source = make_source(
        organization=organization, kind=SourceKind.MEDIA_URL, title="Webinar",
        url="https://media.example.com/webinar.mp4", media_seconds=3725.0, **fields,
    )  # fmt: skip
    Transcription.objects.create(
        organization=organization, source=source, media_sha256="0" * 64, provider="api.openai.com",
        model="whisper-1", duration_seconds=3725.0, cost_usd=Decimal("0.372500"), segments=SEGMENTS,
    )  # fmt: skip
    return source


def test_source_page_shows_the_transcript_with_links_to_each_moment_and_its_cost(client):
    organization = make_organization()
    source = _recording(organization)
    client.force_login(owner_of(organization))
    page = client.get(reverse("admin:knowledge_source_change", args=[source.pk])).content.decode()
    assert 'href="https://media.example.com/webinar.mp4#t=252"' in page
    assert ">04:12</a> Hold the blue valve button for ten seconds." in page
    assert "1 h 02 min" in page  # the recording's length
    assert "whisper-1 at api.openai.com: 1 h 02 min, 0.372500 USD" in page


def test_transcriptions_list_their_length_and_cost(client):
    organization = make_organization()
    _recording(organization)
    client.force_login(owner_of(organization))
    page = client.get(reverse("admin:knowledge_transcription_changelist")).content.decode()
    assert "Webinar" in page and "0.372500" in page and "1 h 02 min" in page
    transcription = Transcription.objects.get()
    detail = client.get(reverse("admin:knowledge_transcription_change", args=[transcription.pk])).content
    assert b"[04:12] Hold the blue valve button for ten seconds." in detail


def test_owner_sets_a_transcription_provider_whose_key_is_stored_encrypted_and_never_shown(client, settings):
    settings.LLM_ALLOW_PRIVATE_BASE_URLS = False
    settings.OUTBOUND_ALLOWED_NETWORKS = [f"{PUBLIC_STAND_IN}/32"]  # stands for a host on the internet
    organization = make_organization()
    client.force_login(owner_of(organization))
    form = {"base_url": f"http://{PUBLIC_STAND_IN}:8000/openai/v1", "model": "whisper-large-v3", "usd_per_minute": "0.00185",
            "api_key": "gsk-secret-transcription-key"}  # fmt: skip
    response = client.post(reverse("admin:knowledge_transcriptionsettings_add"), form)
    assert response.status_code == 302, response.content[:3000]
    row = TranscriptionSettings.objects.get(organization=organization)
    assert row.get_api_key() == "gsk-secret-transcription-key"
    assert "gsk-secret" not in row.api_key_encrypted
    page = client.get(reverse("admin:knowledge_transcriptionsettings_change", args=[row.pk])).content.decode()
    assert "gsk-secret" not in page and "Set (hidden)" in page
    # Saving without a key keeps it; an internal address is refused with the reason.
    response = client.post(
        reverse("admin:knowledge_transcriptionsettings_change", args=[row.pk]), {**form, "api_key": ""}
    )
    assert response.status_code == 302
    assert TranscriptionSettings.objects.get().get_api_key() == "gsk-secret-transcription-key"
    response = client.post(
        reverse("admin:knowledge_transcriptionsettings_change", args=[row.pk]),
        {**form, "base_url": "http://10.0.0.5:8000/v1"},
    )
    assert response.status_code == 200 and "This address is not allowed here" in response.content.decode()
    assert TranscriptionSettings.objects.get().base_url == f"http://{PUBLIC_STAND_IN}:8000/openai/v1"


def test_transcription_keys_rotate_with_the_encryption_keys(settings):
    settings.FIELD_ENCRYPTION_KEYS = ["old-passphrase-0123456789abcdef"]
    row = TranscriptionSettings(organization=make_organization(), base_url="https://api.openai.com/v1")
    row.set_api_key("sk-transcribe")
    row.save()
    settings.FIELD_ENCRYPTION_KEYS = ["new-passphrase-fedcba9876543210", "old-passphrase-0123456789abcdef"]
    call_command("rotate_encryption_keys")
    settings.FIELD_ENCRYPTION_KEYS = ["new-passphrase-fedcba9876543210"]
    assert TranscriptionSettings.objects.get().get_api_key() == "sk-transcribe"


def test_an_audio_source_refuses_a_document_upload(client):
    from django.core.files.uploadedfile import SimpleUploadedFile

    organization = make_organization()
    client.force_login(owner_of(organization))
    response = client.post(
        reverse("admin:knowledge_source_add"),
        {"title": "Call", "kind": "audio", "max_pages": "50", "max_depth": "3", "resync_hours": "0",
         "faq_pairs-TOTAL_FORMS": "0", "faq_pairs-INITIAL_FORMS": "0",
         "file": SimpleUploadedFile("notes.pdf", b"%PDF-1.4 x")},
    )  # fmt: skip
    assert response.status_code == 200
    assert "Upload an audio file" in response.content.decode()
