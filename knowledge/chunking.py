"""Structure-aware chunking with overlap.

Blocks (headings, paragraphs, list items, table rows) are packed into chunks of at most ``max_chars``;
a block is split only when it alone is too long (at sentence boundaries). A heading starts a new chunk
and is carried as the chunk's ``heading`` (its section path). Consecutive chunks of the same section
overlap by the trailing block(s) of the previous chunk, up to ``overlap_chars``. A transcript's chunk spans
at most ``MAX_MEDIA_SECONDS`` of the recording, so the moment it is cited at is near what it says.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from knowledge.parsing import Block

MAX_CHARS = 1200
OVERLAP_CHARS = 200
MAX_MEDIA_SECONDS = 60.0
MIN_SENTENCE_CHARS = 30  # shorter pieces ("Fig. 2.", a two-word list item) join the next one
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


@dataclass
class ChunkDraft:
    content: str
    heading: str
    page: int | None
    url: str
    tabular: bool = False  # made of table rows only: its rows get no vectors of their own
    start: float | None = None  # where it starts in a recording (seconds)

    @property
    def content_hash(self) -> str:
        return hashlib.sha256(f"{self.heading}\n{self.content}".encode()).hexdigest()

    @property
    def token_estimate(self) -> int:
        return max(1, len(self.content) // 4)


def passage_sentences(content: str) -> list[str]:
    """The sentences (and lines, such as list items) of a chunk that get vectors of their own.

    A chunk's vector blurs its sentences together, and the embedder reads only its first 256 word pieces;
    a question usually matches one sentence, so the vector side also scores a chunk by its best sentence
    (SciFact vector-only nDCG@10 0.643 → 0.695, BENCHMARKS.md). Empty for a chunk of one sentence: its
    own vector already is that sentence's.
    """
    pieces: list[str] = []
    pending = ""
    for line in content.splitlines():
        for sentence in _SENTENCE_END.split(line.strip()):
            pending = f"{pending} {sentence}".strip() if pending else sentence.strip()
            if len(pending) >= MIN_SENTENCE_CHARS:
                pieces.append(pending)
                pending = ""
    if pending:
        if pieces:
            pieces[-1] = f"{pieces[-1]} {pending}"
        else:
            pieces.append(pending)
    return pieces if len(pieces) > 1 else []


def _split_long(text: str, max_chars: int) -> list[str]:
    sentences = _SENTENCE_END.split(text)
    pieces: list[str] = []
    current = ""
    for sentence in sentences:
        while len(sentence) > max_chars:  # a "sentence" longer than a chunk: cut at a space
            cut = sentence.rfind(" ", 0, max_chars)
            cut = cut if cut > max_chars // 2 else max_chars
            if current:
                pieces.append(current)
                current = ""
            pieces.append(sentence[:cut].strip())
            sentence = sentence[cut:].strip()
        if current and len(current) + 1 + len(sentence) > max_chars:
            pieces.append(current)
            current = sentence
        else:
            current = f"{current} {sentence}".strip()
    if current:
        pieces.append(current)
    return pieces


def chunk_blocks(
    blocks: list[Block], *, max_chars: int = MAX_CHARS, overlap_chars: int = OVERLAP_CHARS
) -> list[ChunkDraft]:
    chunks: list[ChunkDraft] = []
    headings: list[tuple[int, str]] = []
    current: list[Block] = []
    size = 0
    section_key: tuple[str, str] = ("", "")

    def heading_path() -> str:
        return " › ".join(text for _, text in headings)[:500]

    def emit(*, keep_overlap: bool) -> None:
        nonlocal current, size
        if not current:
            return
        first = current[0]
        chunks.append(
            ChunkDraft(
                content="\n".join(block.text for block in current),
                heading=first.heading or heading_path(),
                page=first.page,
                url=first.url,
                tabular=all(block.kind == "row" for block in current),
                start=first.start,
            )
        )
        tail: list[Block] = []
        if keep_overlap:
            tail_size = 0
            for block in reversed(current[1:] if len(current) > 1 else []):
                if tail_size + len(block.text) > overlap_chars:
                    break
                tail.insert(0, block)
                tail_size += len(block.text) + 1
        current = tail
        size = sum(len(block.text) + 1 for block in tail)

    for block in blocks:
        text = block.text.strip()
        if not text:
            continue
        if block.kind == "heading":
            emit(keep_overlap=False)
            headings = [(level, t) for level, t in headings if level < block.level] + [(block.level, text)]
            continue
        key = (block.url, block.heading)
        if key != section_key:  # a new page of a website or a new document: never mix them in one chunk
            emit(keep_overlap=False)
            section_key = key
        starts = (block.start, current[0].start if current else None)
        if None not in starts and starts[0] - starts[1] > MAX_MEDIA_SECONDS:  # type: ignore[operator]
            emit(keep_overlap=False)  # a new moment of the recording: cited at its own time
        pieces = _split_long(text, max_chars) if len(text) > max_chars else [text]
        for piece in pieces:
            part = Block(
                text=piece, kind=block.kind, page=block.page, url=block.url, heading=block.heading,
                start=block.start,
            )  # fmt: skip
            if current and size + len(piece) + 1 > max_chars:
                emit(keep_overlap=True)
                if current and size + len(piece) + 1 > max_chars:
                    current, size = [], 0
            current.append(part)
            size += len(piece) + 1
    emit(keep_overlap=False)
    return chunks
