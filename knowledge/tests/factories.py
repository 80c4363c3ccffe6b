"""Test data for knowledge: organizations' sources and hand-built documents (PDF, DOCX, zip bombs)."""

from __future__ import annotations

import io
import os
import zipfile

from accounts.tests.factories import make_organization
from knowledge.models import Source, SourceKind

__all__ = [
    "make_docx",
    "make_organization",
    "make_pdf",
    "make_recording",
    "make_source",
    "make_zip_bomb_docx",
]


def make_source(*, organization, kind: str = SourceKind.TEXT, title: str = "Handbook", **fields) -> Source:
    return Source.objects.create(organization=organization, kind=kind, title=title, **fields)


def _pdf_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def make_pdf(pages: list[str]) -> bytes:
    """A minimal valid PDF with one text page per entry (Helvetica; lines split on newlines)."""
    objects: list[bytes] = []
    page_ids = []
    font_id = 3
    for index, text in enumerate(pages):
        content_id = 4 + index * 2
        page_id = content_id + 1
        page_ids.append(page_id)
        lines = text.split("\n")
        ops = ["BT", "/F1 11 Tf", "14 TL", "50 780 Td"]
        for line in lines:
            ops.append(f"({_pdf_escape(line)}) Tj T*")
        ops.append("ET")
        stream = "\n".join(ops).encode("latin-1", "replace")
        objects.append((content_id, b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream"))
        objects.append(
            (
                page_id,
                b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 842] /Contents %d 0 R "
                b"/Resources << /Font << /F1 %d 0 R >> >> >>" % (content_id, font_id),
            )
        )
    kids = " ".join(f"{pid} 0 R" for pid in page_ids).encode()
    objects = [
        (1, b"<< /Type /Catalog /Pages 2 0 R >>"),
        (2, b"<< /Type /Pages /Kids [" + kids + b"] /Count %d >>" % len(page_ids)),
        (3, b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"),
        *objects,
    ]
    objects.sort()
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = {}
    for number, body in objects:
        offsets[number] = out.tell()
        out.write(b"%d 0 obj\n" % number + body + b"\nendobj\n")
    xref = out.tell()
    count = len(objects) + 1
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % count)
    for number in range(1, count):
        out.write(b"%010d 00000 n \n" % offsets[number])
    out.write(b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (count, xref))
    return out.getvalue()


def make_encrypted_pdf(text: str = "Secret plans", password: str = "hunter22") -> bytes:  # noqa: S107
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(make_pdf([text]))))
    writer.encrypt(user_password=password, owner_password=password)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def make_docx(*, heading: str, paragraphs: list[str], table: list[list[str]] | None = None) -> bytes:
    import docx

    document = docx.Document()
    document.add_heading(heading, level=1)
    for paragraph in paragraphs:
        document.add_paragraph(paragraph)
    if table:
        grid = document.add_table(rows=len(table), cols=len(table[0]))
        for r, row in enumerate(table):
            for c, value in enumerate(row):
                grid.cell(r, c).text = value
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def make_zip_bomb_docx(unpacked_bytes: int = 300 * 1024 * 1024, *, padding_bytes: int = 0) -> bytes:
    """A .docx-shaped zip whose document.xml inflates to ``unpacked_bytes`` of zeros; ``padding_bytes`` of
    random (incompressible) media make the archive as a whole look harmless."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        if padding_bytes:
            archive.writestr("word/media/image1.png", os.urandom(padding_bytes))
        with archive.open("word/document.xml", "w", force_zip64=True) as member:
            block = b"\0" * (1024 * 1024)
            for _ in range(unpacked_bytes // len(block)):
                member.write(block)
    return out.getvalue()


def make_recording(*, seconds: float = 3.0, video: bool = False, audio: bool = True, ext: str = "") -> bytes:
    """A real recording made by the bundled ffmpeg: a sine tone (WAV), or a colour video with the tone as
    its sound track (MP4); ``audio=False`` makes a silent video with no audio track at all."""
    import subprocess
    import tempfile
    from pathlib import Path

    import imageio_ffmpeg

    ext = ext or ("mp4" if video else "wav")
    inputs = ["-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}"] if audio else []
    if video:
        inputs = ["-f", "lavfi", "-i", f"color=c=blue:s=64x48:r=5:d={seconds}", *inputs]
    with tempfile.TemporaryDirectory() as folder:
        target = Path(folder) / f"recording.{ext}"
        subprocess.run(
            [imageio_ffmpeg.get_ffmpeg_exe(), "-nostdin", "-v", "error", *inputs, "-shortest", str(target)],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip
        return target.read_bytes()
