"""Audio and video sources on a real Celery worker: recordings made by the bundled ffmpeg, transcribed by
the local OpenAI-compatible server (``/v1/audio/transcriptions``), stored as timed chunks."""

from __future__ import annotations

import time
from decimal import Decimal

import pytest
from django.core.files.base import ContentFile
from django.db import connection

from chatbots.tests.factories import SERVER_KEY
from knowledge.models import Chunk, Source, SourceKind, Transcription
from knowledge.services import (
    source_create,
    source_request_ingest,
    transcription_settings_set,
    upload_problem,
)
from knowledge.testing import Site, serve
from knowledge.tests.factories import make_organization, make_recording

pytestmark = pytest.mark.django_db(transaction=True)

TENT = [
    (0.0, 6.0, "Welcome to the Trailblazer tent tutorial."),
    (70.0, 78.0, "First unpack the poles and lay the inner tent flat on the ground."),
    (252.0, 259.5, "To reset the air pump, hold the blue valve button for ten seconds until it clicks."),
]


def _wait_for(source_id: int, timeout: float = 90) -> Source:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        source = Source.objects.get(pk=source_id)
        if source.status in ("ready", "failed"):
            return source
        time.sleep(0.1)
    raise AssertionError(f"source {source_id} still {source.status} after {timeout}s")


@pytest.fixture
def transcriber(llm_server, settings):
    """The deployment's transcription provider: the local server, at 0.006 USD a minute."""
    llm_server.reset()
    llm_server.transcripts.clear()
    settings.TRANSCRIPTION_BASE_URL = llm_server.base_url
    settings.TRANSCRIPTION_MODEL = "whisper-test"
    settings.TRANSCRIPTION_USD_PER_MINUTE = "0.006"
    return llm_server


def _transcription_requests(server) -> list:
    return [r for r in server.requests if r.path.endswith("/audio/transcriptions")]


def test_uploaded_audio_becomes_timed_chunks_with_its_transcript_and_cost(celery_worker, media, transcriber):
    transcriber.script_transcript("whisper-test", TENT)
    source = source_create(
        organization=make_organization(), kind=SourceKind.AUDIO, title="Tent tutorial",
        file=ContentFile(make_recording(seconds=3), name="tent.wav"),
    )  # fmt: skip
    source = _wait_for(source.pk)
    assert source.status == "ready", source.status_reason
    starts = list(
        Chunk.objects.filter(source=source).order_by("ordinal").values_list("start_seconds", flat=True)
    )
    assert starts == [0.0, 70.0, 252.0]  # moments far apart are chunks of their own
    pump = Chunk.objects.get(source=source, start_seconds=252.0)
    assert "blue valve button" in pump.content and pump.heading == "Tent tutorial"
    (request,) = _transcription_requests(transcriber)
    assert request.params["format"] == "mp3" and request.params["response_format"] == "verbose_json"
    transcription = Transcription.objects.get(source=source)
    assert transcription.duration_seconds == pytest.approx(3.0, abs=0.1)  # the recording's own length
    assert transcription.cost_usd == Decimal("0.000300")  # 3 s at 0.006 USD a minute
    assert "[04:12] To reset the air pump" in transcription.transcript
    assert source.media_seconds == pytest.approx(3.0, abs=0.1)


def test_uploaded_video_is_reduced_to_its_sound_before_transcription(celery_worker, media, transcriber):
    transcriber.script_transcript("whisper-test", TENT)
    source = source_create(
        organization=make_organization(), kind=SourceKind.FILE, title="Tent video",
        file=ContentFile(make_recording(seconds=2, video=True), name="tent.mp4"),
    )  # fmt: skip
    assert source.kind == SourceKind.VIDEO  # a recording added as a plain file is still a video
    source = _wait_for(source.pk)
    assert source.status == "ready", source.status_reason
    (request,) = _transcription_requests(transcriber)
    assert request.params["format"] == "mp3" and request.params["filename"].endswith(".mp3")
    assert Chunk.objects.filter(source=source, start_seconds=252.0).exists()


def test_re_ingesting_the_same_recording_reuses_its_transcript(celery_worker, media, transcriber):
    transcriber.script_transcript("whisper-test", TENT)
    source = source_create(
        organization=make_organization(), kind=SourceKind.AUDIO, title="Tent tutorial",
        file=ContentFile(make_recording(seconds=1), name="tent.wav"),
    )  # fmt: skip
    assert _wait_for(source.pk).status == "ready"
    source_request_ingest(source=source)
    assert _wait_for(source.pk).status == "ready"
    assert len(_transcription_requests(transcriber)) == 1
    assert Transcription.objects.filter(source=source).count() == 1


def test_long_recordings_are_sent_in_parts_and_times_shifted_to_the_whole(
    celery_worker, media, transcriber, settings
):
    settings.TRANSCRIPTION_PART_SECONDS = 2
    transcriber.script_transcript("whisper-test", [(0.5, 1.5, "A part of the webinar about return labels.")])
    source = source_create(
        organization=make_organization(), kind=SourceKind.AUDIO, title="Webinar",
        file=ContentFile(make_recording(seconds=5), name="webinar.wav"),
    )  # fmt: skip
    source = _wait_for(source.pk)
    assert source.status == "ready", source.status_reason
    requests = _transcription_requests(transcriber)
    assert len(requests) == 3 and all(r.params["format"] == "mp3" for r in requests)
    transcription = Transcription.objects.get(source=source)
    assert transcription.parts == 3
    assert [s["start"] for s in transcription.segments] == pytest.approx([0.5, 2.5, 4.5], abs=0.05)


def test_media_url_is_downloaded_through_the_guard_and_linked_at_each_moment(
    celery_worker, transcriber, settings
):
    settings.KNOWLEDGE_ALLOW_PRIVATE_URLS = True
    transcriber.script_transcript("whisper-test", TENT)
    site = Site({"/videos/tent.mp4": (200, "video/mp4", make_recording(seconds=2, video=True))})
    with serve(site):
        source = source_create(
            organization=make_organization(), kind=SourceKind.MEDIA_URL, title="Tent video",
            url=f"{site.base}/videos/tent.mp4",
        )  # fmt: skip
        source = _wait_for(source.pk)
    assert source.status == "ready", source.status_reason
    chunk = Chunk.objects.get(source=source, start_seconds=252.0)
    assert chunk.url == f"{site.base}/videos/tent.mp4"


def test_media_url_to_a_private_address_is_refused(celery_worker, transcriber, settings):
    settings.KNOWLEDGE_ALLOW_PRIVATE_URLS = False
    source = source_create(
        organization=make_organization(), kind=SourceKind.MEDIA_URL, url="http://127.0.0.1:9/tent.mp4"
    )
    source = _wait_for(source.pk)
    assert source.status == "failed" and "private, local or cloud-internal" in source.status_reason
    assert not _transcription_requests(transcriber)


def test_without_a_transcription_provider_the_source_says_one_is_needed(celery_worker, media, settings):
    settings.TRANSCRIPTION_BASE_URL = ""
    source = source_create(
        organization=make_organization(), kind=SourceKind.AUDIO,
        file=ContentFile(make_recording(seconds=1), name="call.wav"),
    )  # fmt: skip
    source = _wait_for(source.pk)
    assert source.status == "failed"
    assert "need a transcription provider" in source.status_reason
    assert "Transcription providers" in source.status_reason


def test_bad_media_is_refused_with_a_reason_and_the_worker_keeps_working(celery_worker, media, transcriber):
    organization = make_organization()
    cases = {
        "not audio": ContentFile(b"<html>not a recording</html>" * 50, name="talk.mp3"),
        "corrupt": ContentFile(make_recording(seconds=2, video=True)[:900], name="talk.mp4"),
        "silent video": ContentFile(make_recording(seconds=1, video=True, audio=False), name="silent.mp4"),
    }
    reasons = {}
    for name, upload in cases.items():
        source = source_create(organization=organization, kind=SourceKind.FILE, title=name, file=upload)
        reasons[name] = _wait_for(source.pk).status_reason
    assert "not an audio or video recording that can be read" in reasons["not audio"]
    assert "not an audio or video recording that can be read" in reasons["corrupt"]
    assert "no audio track" in reasons["silent video"]
    assert not _transcription_requests(transcriber)
    good = source_create(
        organization=organization, kind=SourceKind.AUDIO, title="Fine",
        file=ContentFile(make_recording(seconds=1), name="fine.wav"),
    )  # fmt: skip
    assert _wait_for(good.pk).status == "ready"


def test_recordings_over_the_length_limit_are_refused(celery_worker, media, transcriber, settings):
    settings.KNOWLEDGE_MEDIA_MAX_SECONDS = 2
    source = source_create(
        organization=make_organization(), kind=SourceKind.AUDIO,
        file=ContentFile(make_recording(seconds=4), name="long.wav"),
    )  # fmt: skip
    source = _wait_for(source.pk)
    assert source.status == "failed"
    assert source.status_reason == "The recording is 4 s long; the limit is 2 s."
    assert not _transcription_requests(transcriber)


def test_uploads_over_the_media_size_limit_are_refused_before_anything_is_stored(settings):
    settings.KNOWLEDGE_MEDIA_MAX_BYTES = 1000
    assert upload_problem(name="talk.mp4", size=5000) == "The recording is larger than 0 MB."
    assert upload_problem(name="talk.mp4", size=900) == ""
    assert upload_problem(name="talk.pdf", size=900, kind=SourceKind.VIDEO).startswith("Upload a video file")


def test_a_provider_refusing_the_recording_fails_the_source_without_echoing_its_message(
    celery_worker, media, transcriber, settings
):
    settings.TRANSCRIPTION_MODEL = "whisper-test?status=400"
    source = source_create(
        organization=make_organization(), kind=SourceKind.AUDIO,
        file=ContentFile(make_recording(seconds=1), name="call.wav"),
    )  # fmt: skip
    source = _wait_for(source.pk)
    assert source.status == "failed"
    assert (
        source.status_reason
        == f"The transcription provider at {transcriber.host}:{transcriber.port} refused the recording (HTTP 400)."
    )


def test_an_organizations_own_provider_is_used_with_its_encrypted_key(
    celery_worker, media, fake_llm, settings
):
    settings.TRANSCRIPTION_BASE_URL = ""
    settings.LLM_ALLOW_PRIVATE_BASE_URLS = True
    fake_llm.script_transcript("whisper-own", TENT)
    organization = make_organization()
    transcription_settings_set(
        organization=organization, base_url=fake_llm.base_url, model="whisper-own",
        usd_per_minute=Decimal("0.1"), api_key=SERVER_KEY,
    )  # fmt: skip
    with connection.cursor() as cursor:
        cursor.execute("SELECT api_key_encrypted FROM knowledge_transcriptionsettings")
        (stored,) = cursor.fetchone()
    assert stored and SERVER_KEY not in stored
    source = source_create(
        organization=organization, kind=SourceKind.AUDIO,
        file=ContentFile(make_recording(seconds=3), name="call.wav"),
    )  # fmt: skip
    source = _wait_for(source.pk)
    assert source.status == "ready", source.status_reason  # the server refuses any other key with 401
    transcription = Transcription.objects.get(source=source)
    assert transcription.model == "whisper-own" and transcription.cost_usd == Decimal("0.005000")


def test_a_wrong_key_says_so(celery_worker, media, fake_llm, settings):
    settings.TRANSCRIPTION_BASE_URL = ""
    settings.LLM_ALLOW_PRIVATE_BASE_URLS = True
    organization = make_organization()
    transcription_settings_set(
        organization=organization, base_url=fake_llm.base_url, model="whisper-own",
        usd_per_minute=Decimal("0.1"), api_key="sk-wrong-key",
    )  # fmt: skip
    source = source_create(
        organization=organization, kind=SourceKind.AUDIO,
        file=ContentFile(make_recording(seconds=1), name="call.wav"),
    )  # fmt: skip
    source = _wait_for(source.pk)
    assert source.status == "failed"
    assert "refused the API key" in source.status_reason and "sk-wrong-key" not in source.status_reason


def test_api_adds_a_video_and_refuses_a_document_as_audio(client, celery_worker, media, transcriber):
    from django.urls import reverse

    from accounts.services import api_key_create

    transcriber.script_transcript("whisper-test", TENT)
    organization = make_organization()
    headers = {"HTTP_AUTHORIZATION": f"Bearer {api_key_create(organization=organization, name='t').key}"}
    video = ContentFile(make_recording(seconds=2, video=True), name="tutorial.mov")
    created = client.post(reverse("api-sources"), {"kind": "video", "file": video}, **headers)
    assert created.status_code == 201, created.content
    assert created.json()["kind"] == "video" and created.json()["title"] == "tutorial.mov"
    source = _wait_for(created.json()["id"])
    assert source.status == "ready", source.status_reason
    body = client.get(reverse("api-source", args=[source.pk]), **headers).json()
    assert body["media_seconds"] == pytest.approx(2.0, abs=0.1) and body["chunk_count"] == 3
    document = ContentFile(b"%PDF-1.4 not a recording", name="notes.pdf")
    refused = client.post(reverse("api-sources"), {"kind": "audio", "file": document}, **headers)
    assert refused.status_code == 400
    assert "Upload an audio file" in refused.content.decode()
