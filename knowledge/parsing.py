"""File parsers: bytes in, a list of structural ``Block`` s out (headings, paragraphs, list items, table rows).

Each parser refuses bad input with an ``IngestError`` whose message a customer can act on. The file's
content is sniffed, never trusted from its extension alone.
"""

from __future__ import annotations

import csv
import io
import re
import zipfile
from dataclasses import dataclass

from django.conf import settings

from knowledge.exceptions import IngestError

TEXT_EXTENSIONS = {"txt", "md", "markdown", "html", "htm", "csv"}
SUPPORTED_EXTENSIONS = {"pdf", "docx", *TEXT_EXTENSIONS}


@dataclass
class Block:
    """One structural unit of a document; the chunker keeps blocks whole where they fit."""

    text: str
    kind: str = "para"  # "heading", "para", "list", "row", "code"
    level: int = 0  # heading level
    page: int | None = None
    url: str = ""
    heading: str = ""  # for sources whose blocks carry their own section title (e.g. evaluation corpora)
    start: float | None = None  # seconds into an audio or video recording


def extension_of(filename: str) -> str:
    return filename.rsplit(".", 1)[-1].lower() if "." in filename else ""


def parse_file(*, filename: str, data: bytes) -> list[Block]:
    ext = extension_of(filename)
    if ext not in SUPPORTED_EXTENSIONS:
        raise IngestError(
            f"Unsupported file type “.{ext}”. Upload PDF, DOCX, TXT, Markdown, HTML or CSV."
            if ext
            else "The file has no extension; upload PDF, DOCX, TXT, Markdown, HTML or CSV."
        )
    if not data:
        raise IngestError("The file is empty.")
    if len(data) > settings.KNOWLEDGE_MAX_FILE_BYTES:
        raise IngestError(
            f"The file is {len(data) / 1e6:.1f} MB; the limit is {settings.KNOWLEDGE_MAX_FILE_BYTES / 1e6:.0f} MB."
        )
    _check_content_matches(ext, data)
    if ext == "pdf":
        blocks = parse_pdf(data)
    elif ext == "docx":
        blocks = parse_docx(data)
    else:
        text = decode_text(data)
        if ext in ("html", "htm"):
            blocks = parse_html(text)
        elif ext == "csv":
            blocks = parse_csv(text)
        elif ext in ("md", "markdown"):
            blocks = parse_markdown(text)
        else:
            blocks = parse_plain_text(text)
    if not any(block.text.strip() for block in blocks):
        raise IngestError("No readable text was found in the file.")
    return blocks


def _check_content_matches(ext: str, data: bytes) -> None:
    is_pdf = data[:1024].lstrip().startswith(b"%PDF-")
    is_zip = data.startswith(b"PK\x03\x04")
    if ext == "pdf" and not is_pdf:
        raise IngestError("The file is named .pdf but is not a PDF document.")
    if ext == "docx" and not is_zip:
        raise IngestError("The file is named .docx but is not a Word document.")
    if ext in TEXT_EXTENSIONS and (is_pdf or is_zip or (b"\x00" in data[:8192] and not _utf16_bom(data))):
        raise IngestError(f"The file is named .{ext} but contains binary data, not text.")


def _utf16_bom(data: bytes) -> bool:
    return data.startswith((b"\xff\xfe", b"\xfe\xff"))


def decode_text(data: bytes) -> str:
    if _utf16_bom(data):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError:
            pass
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise IngestError(
            f"The text is not valid UTF-8 (byte {exc.start}); save the file as UTF-8 and upload it again."
        ) from None


# --- PDF ---------------------------------------------------------------------------------------


def parse_pdf(data: bytes) -> list[Block]:
    from pypdf import PdfReader
    from pypdf.errors import FileNotDecryptedError, PdfReadError

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            # Owner-password-only PDFs open with an empty user password; anything else needs the password.
            try:
                if not reader.decrypt(""):
                    raise IngestError("The PDF is password-protected; upload a copy without a password.")
            except (FileNotDecryptedError, NotImplementedError):
                raise IngestError(
                    "The PDF is password-protected; upload a copy without a password."
                ) from None
        blocks: list[Block] = []
        for number, page in enumerate(reader.pages, start=1):
            text = page.extract_text() or ""
            for paragraph in _paragraphs(text):
                blocks.append(Block(text=paragraph, page=number))
    except IngestError:
        raise
    except FileNotDecryptedError:
        raise IngestError("The PDF is password-protected; upload a copy without a password.") from None
    except (PdfReadError, ValueError, KeyError, TypeError, AttributeError, IndexError, RecursionError) as exc:
        raise IngestError(f"The PDF is damaged and cannot be read ({type(exc).__name__}).") from None
    if not blocks:
        raise IngestError(
            "The PDF has no extractable text (is it a scan? Text recognition is not supported)."
        )
    return blocks


def _paragraphs(text: str) -> list[str]:
    """Split on blank lines; rejoin lines a PDF or plain text wrapped inside a paragraph."""
    parts = re.split(r"\n\s*\n", text.replace("\r\n", "\n"))
    out = []
    for part in parts:
        lines = [line.strip() for line in part.split("\n") if line.strip()]
        if lines:
            out.append(
                " ".join(lines) if not any(_is_list_item(line) for line in lines) else "\n".join(lines)
            )
    return out


def _is_list_item(line: str) -> bool:
    return bool(re.match(r"^(\s*[-*•]|\s*\d+[.)])\s+", line))


# --- DOCX --------------------------------------------------------------------------------------


# A DOCX's XML parts compress about 5-20x; a DEFLATE bomb reaches ~1000x. The check is per member: one
# ratio over the whole archive let a 1.2 MB file with one 150 MB member through (its other members,
# incompressible images, pulled the average down). Declared sizes can be trusted as bounds: ``zipfile``
# never inflates a member past its declared size (the CRC check fails instead).
MAX_MEMBER_RATIO = 100
RATIO_CHECKED_ABOVE = 1024 * 1024  # small members may compress far better (empty parts, repeated styles)


def _check_zip(data: bytes, *, what: str) -> zipfile.ZipFile:
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        raise IngestError(f"The {what} is damaged and cannot be read.") from None
    limit = settings.KNOWLEDGE_MAX_UNPACKED_BYTES
    total = 0
    for info in archive.infolist():
        total += info.file_size
        ratio = info.file_size / max(info.compress_size, 1)
        if info.file_size > limit or (info.file_size > RATIO_CHECKED_ABOVE and ratio > MAX_MEMBER_RATIO):
            raise IngestError(
                f"The {what} unpacks {info.filename} to {info.file_size / 1e6:.0f} MB "
                "(a decompression bomb?); refused."
            )
    if total > limit:
        raise IngestError(f"The {what} unpacks to {total / 1e6:.0f} MB (a decompression bomb?); refused.")
    return archive


def parse_docx(data: bytes) -> list[Block]:
    archive = _check_zip(data, what="Word document")
    names = set(archive.namelist())
    if "EncryptedPackage" in names:
        raise IngestError("The Word document is password-protected; upload a copy without a password.")
    if "word/document.xml" not in names:
        raise IngestError("The file is named .docx but is not a Word document.")
    import docx
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    try:
        document = docx.Document(io.BytesIO(data))
    except Exception as exc:  # python-docx raises a zoo of lxml/KeyError/ValueError for broken files
        raise IngestError(
            f"The Word document is damaged and cannot be read ({type(exc).__name__})."
        ) from None
    blocks: list[Block] = []
    for element in document.element.body.iterchildren():
        tag = element.tag.rsplit("}", 1)[-1]
        if tag == "p":
            paragraph = Paragraph(element, document)
            text = paragraph.text.strip()
            if not text:
                continue
            style = (paragraph.style.name if paragraph.style is not None else "") or ""
            if style.startswith("Heading") or style == "Title":
                level = int(style.split()[-1]) if style.split()[-1].isdigit() else 1
                blocks.append(Block(text=text, kind="heading", level=level))
            elif "List" in style:
                blocks.append(Block(text=f"- {text}", kind="list"))
            else:
                blocks.append(Block(text=text))
        elif tag == "tbl":
            rows = [[cell.text.strip() for cell in row.cells] for row in Table(element, document).rows]
            blocks.extend(_table_rows(rows))
    return blocks


def _table_rows(rows: list[list[str]]) -> list[Block]:
    """Tables become one readable line per row: ``Header: value; Header: value``."""
    rows = [row for row in rows if any(cell for cell in row)]
    if not rows:
        return []
    header = rows[0]
    if len(rows) == 1 or not all(header):
        return [Block(text=" | ".join(row), kind="row") for row in rows]
    out = []
    for row in rows[1:]:
        pairs = [f"{name}: {value}" for name, value in zip(header, row, strict=False) if value]
        if pairs:
            out.append(Block(text="; ".join(pairs), kind="row"))
    return out


# --- CSV ---------------------------------------------------------------------------------------


def parse_csv(text: str) -> list[Block]:
    sample = text[:20000]
    try:
        dialect = csv.Sniffer().sniff(sample, delimiters=",;\t|")
    except csv.Error:
        dialect = csv.excel
    try:
        rows = list(csv.reader(io.StringIO(text), dialect))
    except csv.Error as exc:
        raise IngestError(f"The CSV file cannot be read: {exc}.") from None
    return _table_rows([[cell.strip() for cell in row] for row in rows])


# --- Markdown and plain text -------------------------------------------------------------------


def parse_plain_text(text: str) -> list[Block]:
    return [Block(text=p, kind="list" if _is_list_item(p) else "para") for p in _paragraphs(text)]


def parse_markdown(text: str) -> list[Block]:
    blocks: list[Block] = []
    paragraph: list[str] = []
    table: list[list[str]] = []
    code: list[str] | None = None

    def flush() -> None:
        if paragraph:
            blocks.append(Block(text=" ".join(paragraph)))
            paragraph.clear()
        if table:
            blocks.extend(_table_rows(table))
            table.clear()

    for raw in text.replace("\r\n", "\n").split("\n"):
        line = raw.rstrip()
        if code is not None:
            if line.strip().startswith("```"):
                blocks.append(Block(text="\n".join(code), kind="code"))
                code = None
            else:
                code.append(line)
            continue
        stripped = line.strip()
        if stripped.startswith("```"):
            flush()
            code = []
        elif match := re.match(r"^(#{1,6})\s+(.*)$", stripped):
            flush()
            blocks.append(
                Block(text=match.group(2).strip("# ").strip(), kind="heading", level=len(match.group(1)))
            )
        elif stripped.startswith("|") and stripped.endswith("|"):
            if paragraph:
                blocks.append(Block(text=" ".join(paragraph)))
                paragraph.clear()
            cells = [cell.strip() for cell in stripped.strip("|").split("|")]
            if not all(re.fullmatch(r":?-{2,}:?", cell) for cell in cells if cell):
                table.append(cells)
        elif _is_list_item(stripped):
            flush()
            blocks.append(Block(text=stripped, kind="list"))
        elif not stripped:
            flush()
        else:
            if table:
                flush()
            paragraph.append(stripped)
    flush()
    if code:
        blocks.append(Block(text="\n".join(code), kind="code"))
    return blocks


# --- HTML --------------------------------------------------------------------------------------

_DROP_TAGS = ["script", "style", "noscript", "template", "svg", "iframe", "object", "embed", "form", "canvas"]
_BOILERPLATE_TAGS = ["nav", "footer", "aside"]


def parse_html(html: str, *, url: str = "") -> list[Block]:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(html, "lxml")
    script_chars = sum(len(tag.get_text()) for tag in soup.find_all(["script", "style"]))
    for tag in soup.find_all(_DROP_TAGS):
        tag.decompose()
    root = soup.find("main") or soup.find("article") or soup.body or soup
    for tag in root.find_all(_BOILERPLATE_TAGS):
        tag.decompose()
    blocks: list[Block] = []
    for element in root.find_all(
        ["h1", "h2", "h3", "h4", "h5", "h6", "p", "li", "tr", "pre", "blockquote", "dt", "dd"]
    ):
        if element.find_parent(["li", "pre", "blockquote", "tr"]) is not None and element.name != "tr":
            continue  # nested blocks are part of their parent's text
        if element.name == "tr":
            continue  # tables are handled below, with their header row
        text = " ".join(element.get_text(" ", strip=True).split())
        if not text:
            continue
        if element.name[0] == "h" and element.name[1:].isdigit():
            blocks.append(Block(text=text, kind="heading", level=int(element.name[1]), url=url))
        elif element.name == "li":
            blocks.append(Block(text=f"- {text}", kind="list", url=url))
        elif element.name == "pre":
            blocks.append(Block(text=element.get_text(), kind="code", url=url))
        else:
            blocks.append(Block(text=text, url=url))
    for table_tag in root.find_all("table"):
        rows = [
            [" ".join(cell.get_text(" ", strip=True).split()) for cell in tr.find_all(["th", "td"])]
            for tr in table_tag.find_all("tr")
        ]
        for block in _table_rows(rows):
            block.url = url
            blocks.append(block)
    if not blocks:
        # Pages without block markup (a bare <body> with text) still have readable text.
        text = " ".join(root.get_text(" ", strip=True).split())
        if text:
            blocks.append(Block(text=text, url=url))
    visible = sum(len(block.text) for block in blocks)
    if visible < 200 and script_chars > 5 * max(visible, 1):
        raise IngestError(
            "The page is built by JavaScript and has almost no readable text; "
            "upload its content as a file or text instead."
        )
    return blocks


def html_title(html: str) -> str:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(html, "lxml")
    return " ".join(soup.title.get_text().split())[:255] if soup.title else ""
