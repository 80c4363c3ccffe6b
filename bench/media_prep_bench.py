"""Preparing recordings for transcription: the bundled ffmpeg's probe + audio extraction into MP3 parts.

    .venv/bin/python bench/media_prep_bench.py [--minutes 30]

Generates (with the same ffmpeg) a WAV tone and an MP4 colour video with a tone of ``--minutes`` each, then
times ``knowledge.media.probe`` + ``extract_audio`` on each, as the ingestion worker runs them. Reports
the wall time, how many minutes of recording one second of preparation handles, and the bytes sent for
transcription per minute (the parts stay under TRANSCRIPTION_MAX_PART_BYTES). Transcription itself is the
provider's time and is not measured here.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=float, default=30.0)
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from knowledge import media

    seconds = args.minutes * 60
    ffmpeg = media.ffmpeg_path()
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        sources = {
            "audio (WAV 44.1 kHz)": (
                work / "tone.wav", ["-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}"]
            ),
            "video (MP4 320x240 25 fps + AAC)": (
                work / "video.mp4",
                ["-f", "lavfi", "-i", f"testsrc=size=320x240:rate=25:duration={seconds}",
                 "-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}", "-shortest"],
            ),
        }  # fmt: skip
        print(f"{args.minutes:g} min each; part length {media.part_seconds()} s; {os.cpu_count()} CPUs")
        print(
            "| input | file size | prepare (probe + extract) | minutes per second | parts | bytes/min sent |"
        )
        print("| --- | ---: | ---: | ---: | ---: | ---: |")
        for label, (path, inputs) in sources.items():
            subprocess.run([ffmpeg, "-nostdin", "-v", "error", *inputs, str(path)], check=True)
            out = work / f"parts-{path.stem}"
            out.mkdir()
            started = time.perf_counter()
            info = media.probe(path)
            media.check_limits(info)
            parts = media.extract_audio(path, out)
            elapsed = time.perf_counter() - started
            sent = sum(part.path.stat().st_size for part in parts)
            print(
                f"| {label} | {path.stat().st_size / 1e6:.1f} MB | {elapsed:.2f} s | "
                f"{args.minutes / elapsed:.0f} | {len(parts)} | {sent / args.minutes / 1e3:.0f} kB |"
            )


if __name__ == "__main__":
    main()
