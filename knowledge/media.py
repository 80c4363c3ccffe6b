"""Audio and video recordings, made ready for transcription with ffmpeg.

ffmpeg comes inside the ``imageio-ffmpeg`` wheel (a static build for each platform), so no system install
is needed. A recording is checked (does it have an audio track, how long is it), then its first audio track
is re-encoded to mono 16 kHz MP3 at 32 kbit/s (what speech recognisers work at: ~14 MB an hour) and cut
into parts that each stay under the provider's upload limit. Each part's start time comes from ffmpeg's
segment list, so segment times from the provider are shifted to the time in the whole recording.
"""

from __future__ import annotations

import csv
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from knowledge.exceptions import IngestError

AUDIO_EXTENSIONS = {"mp3", "m4a", "wav", "ogg", "oga", "opus", "webm", "flac", "aac", "mpga"}
VIDEO_EXTENSIONS = {"mp4", "mov", "webm", "mkv", "m4v", "avi"}
MEDIA_EXTENSIONS = AUDIO_EXTENSIONS | VIDEO_EXTENSIONS
PART_BITRATE = 32_000
MIN_PART_SECONDS = 0.5  # bits per second of the MP3 parts sent for transcription
_DURATION = re.compile(r"Duration:\s*(\d+):(\d{2}):(\d{2}(?:\.\d+)?)")
_STREAM = re.compile(r"Stream #\d+:\d+.*?: (Audio|Video):")


def ffmpeg_path() -> str:
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


@dataclass(frozen=True)
class MediaInfo:
    duration: float | None  # None: the container does not say (some streamed WebM files)
    has_audio: bool
    has_video: bool


@dataclass(frozen=True)
class AudioPart:
    path: Path
    start: float  # seconds from the start of the recording


def _run(args: list[str], *, timeout: float) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            [ffmpeg_path(), "-nostdin", "-hide_banner", *args],
            capture_output=True, text=True, errors="replace", timeout=timeout, check=False,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        raise IngestError("Reading the recording took too long; try a shorter or simpler file.") from None


def probe(path: Path) -> MediaInfo:
    """What ffmpeg sees in the file; refuses anything that is not a readable recording."""
    result = _run(["-i", str(path)], timeout=60)  # no output file: ffmpeg prints the streams and exits 1
    streams = _STREAM.findall(result.stderr)
    if not streams:
        raise IngestError(
            "The file is not an audio or video recording that can be read (damaged, or another format)."
        )
    match = _DURATION.search(result.stderr)
    duration = int(match[1]) * 3600 + int(match[2]) * 60 + float(match[3]) if match else None
    return MediaInfo(duration=duration, has_audio="Audio" in streams, has_video="Video" in streams)


def check_limits(info: MediaInfo) -> None:
    """Refuse a recording without sound or longer than ``KNOWLEDGE_MEDIA_MAX_SECONDS``."""
    if not info.has_audio:
        raise IngestError("The recording has no audio track, so there is nothing to transcribe.")
    limit = settings.KNOWLEDGE_MEDIA_MAX_SECONDS
    if info.duration is not None and info.duration > limit:
        raise IngestError(
            f"The recording is {duration_label(info.duration)} long; the limit is {duration_label(limit)}."
        )


def part_seconds() -> int:
    """How long each part may be: ``TRANSCRIPTION_PART_SECONDS``, shorter if the byte limit needs it."""
    by_size = int(settings.TRANSCRIPTION_MAX_PART_BYTES * 8 * 0.95 / PART_BITRATE)
    return max(1, min(settings.TRANSCRIPTION_PART_SECONDS, by_size))


def extract_audio(path: Path, work: Path) -> list[AudioPart]:
    """The recording's first audio track as MP3 parts in ``work``, each with its start time."""
    limit = settings.KNOWLEDGE_MEDIA_MAX_SECONDS
    listing = work / "parts.csv"
    result = _run(
        [
            "-v", "error", "-i", str(path), "-map", "0:a:0", "-vn", "-sn", "-dn",
            "-ac", "1", "-ar", "16000", "-c:a", "libmp3lame", "-b:a", str(PART_BITRATE),
            "-t", str(limit + 1),  # a file whose header lied about its length still stops here
            "-f", "segment", "-segment_time", str(part_seconds()), "-reset_timestamps", "1",
            "-segment_list", str(listing), "-segment_list_type", "csv",
            str(work / "part%04d.mp3"),
        ],
        timeout=max(120.0, limit / 4),
    )  # fmt: skip
    if result.returncode != 0 or not listing.exists():
        detail = (result.stderr.strip().splitlines() or ["unknown error"])[-1][:200]
        raise IngestError(f"The recording's sound could not be read ({detail}).")
    parts = []
    end = 0.0  # the last part's end: the length of the sound itself
    with listing.open(newline="") as handle:
        for row in csv.reader(handle):
            if len(row) < 3 or not (work / row[0]).exists():
                continue
            end = float(row[2])
            # The tail after the last full part may be a few milliseconds of encoder padding: providers
            # refuse audio under 0.1 s, and there is nothing to hear in it.
            if end - float(row[1]) >= MIN_PART_SECONDS or not parts:
                parts.append(AudioPart(path=work / row[0], start=float(row[1])))
    if not parts:
        raise IngestError("The recording has no sound that could be read.")
    if end > limit:
        raise IngestError(f"The recording is longer than the limit of {duration_label(limit)}.")
    return parts


def duration_label(seconds: float) -> str:
    """``1 h 05 min``, ``12 min 30 s``, ``45 s``: a length as customers read it."""
    total = round(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    return f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"
