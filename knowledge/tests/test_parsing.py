from __future__ import annotations

import itertools

import pytest

from knowledge.chunking import chunk_blocks, passage_sentences
from knowledge.exceptions import IngestError
from knowledge.parsing import Block, parse_file
from knowledge.tests.factories import make_docx, make_encrypted_pdf, make_pdf, make_zip_bomb_docx


def test_pdf_keeps_page_numbers():
    blocks = parse_file(filename="guide.pdf", data=make_pdf(["Returns take 30 days.", "Shipping is free."]))
    assert [(b.text, b.page) for b in blocks] == [("Returns take 30 days.", 1), ("Shipping is free.", 2)]


def test_docx_table_rows_become_readable_lines_under_their_heading():
    data = make_docx(
        heading="Prices",
        paragraphs=["Our boots."],
        table=[["Item", "Price"], ["Boots", "99 EUR"], ["Socks", "5 EUR"]],
    )
    chunks = chunk_blocks(parse_file(filename="prices.docx", data=data))
    assert len(chunks) == 1
    assert chunks[0].heading == "Prices"
    assert "Item: Boots; Price: 99 EUR" in chunks[0].content
    assert "Item: Socks; Price: 5 EUR" in chunks[0].content


def test_csv_rows_are_col_value_lines():
    blocks = parse_file(filename="stock.csv", data=b"name;price\nboots;99\nsocks;5\n")
    assert [b.text for b in blocks] == ["name: boots; price: 99", "name: socks; price: 5"]


def test_markdown_headings_lists_and_tables():
    text = "# Guide\n\nIntro.\n\n## Returns\n- within 30 days\n- with receipt\n\n| a | b |\n|---|---|\n| 1 | 2 |\n"
    chunks = chunk_blocks(parse_file(filename="guide.md", data=text.encode()))
    assert chunks[0].heading == "Guide"
    assert chunks[1].heading == "Guide › Returns"
    assert chunks[1].content == "- within 30 days\n- with receipt\na: 1; b: 2"


def test_html_drops_scripts_and_navigation():
    html = "<html><body><nav>Menu</nav><script>var x=1;</script><h1>Help</h1><p>Call us.</p></body></html>"
    blocks = parse_file(filename="help.html", data=html.encode())
    assert [b.text for b in blocks] == ["Help", "Call us."]


@pytest.mark.parametrize(
    ("filename", "data", "reason"),
    [
        ("empty.txt", b"", "empty"),
        ("broken.pdf", b"%PDF-1.4\nthis is not really a pdf", "damaged"),
        ("fake.pdf", b"just text", "not a PDF"),
        ("fake.docx", b"just text", "not a Word document"),
        ("picture.txt", b"PK\x03\x04binary", "binary data"),
        ("latin.txt", "Grüße aus Köln".encode("latin-1"), "not valid UTF-8"),
        ("tool.exe", b"MZ", "Unsupported file type"),
        (
            "app.html",
            b"<html><body><script>" + b"x=1;" * 2000 + b"</script><div>Hi</div></body></html>",
            "JavaScript",
        ),
    ],
)
def test_bad_files_fail_with_a_readable_reason(filename, data, reason):
    with pytest.raises(IngestError) as excinfo:
        parse_file(filename=filename, data=data)
    assert reason in excinfo.value.reason


def test_password_protected_pdf_is_refused():
    with pytest.raises(IngestError, match="password-protected"):
        parse_file(filename="secret.pdf", data=make_encrypted_pdf())


def test_docx_decompression_bomb_is_refused():
    with pytest.raises(IngestError, match="decompression bomb"):
        parse_file(filename="bomb.docx", data=make_zip_bomb_docx())


def test_one_bomb_member_is_refused_even_when_the_whole_archive_looks_harmless():
    # 1.2 MB on disk, 151 MB unpacked (ratio ~125 overall, under any whole-archive limit), but
    # word/document.xml alone inflates ~1000x.
    data = make_zip_bomb_docx(150 * 1024 * 1024, padding_bytes=1024 * 1024)
    assert len(data) < 1.3e6
    with pytest.raises(IngestError, match=r"word/document\.xml .*decompression bomb"):
        parse_file(filename="report.docx", data=data)


def test_a_large_member_is_refused_even_when_it_compresses_modestly(settings):
    settings.KNOWLEDGE_MAX_UNPACKED_BYTES = 4 * 1024 * 1024
    data = make_zip_bomb_docx(3 * 1024 * 1024, padding_bytes=5 * 1024 * 1024)  # the image: 5 MB stored
    with pytest.raises(IngestError, match=r"image1\.png .*decompression bomb"):
        parse_file(filename="report.docx", data=data)


def test_oversize_file_is_refused(settings):
    settings.KNOWLEDGE_MAX_FILE_BYTES = 100
    with pytest.raises(IngestError, match="the limit is"):
        parse_file(filename="big.txt", data=b"a" * 101)


def test_chunks_overlap_and_keep_blocks_whole():
    blocks = [Block(text=f"Paragraph {i} " + "word " * 40) for i in range(10)]
    chunks = chunk_blocks(blocks, max_chars=600, overlap_chars=250)
    assert len(chunks) > 2
    for first, second in itertools.pairwise(chunks):
        assert first.content.split("\n")[-1] == second.content.split("\n")[0]  # the last block repeats
    assert all(len(c.content) <= 600 for c in chunks)
    for chunk in chunks:
        assert all(line.startswith("Paragraph") for line in chunk.content.split("\n"))


def test_long_paragraph_is_split_at_sentences():
    text = " ".join(f"Sentence number {i} is here." for i in range(200))
    chunks = chunk_blocks([Block(text=text)], max_chars=500)
    assert all(len(c.content) <= 500 for c in chunks)
    assert all(c.content.endswith(".") for c in chunks)


def test_a_chunk_has_a_vector_per_sentence_and_line_short_pieces_joining_the_next():
    content = (
        "Boots can be returned within 30 days with the receipt. Fig. 2. Refunds reach your card in five "
        "working days after we receive the parcel.\n- Gaiters: final sale.\n- Socks: packs of three, "
        "returnable when unopened and in their original box."
    )
    assert passage_sentences(content) == [
        "Boots can be returned within 30 days with the receipt.",
        "Fig. 2. Refunds reach your card in five working days after we receive the parcel.",
        "- Gaiters: final sale. - Socks: packs of three, returnable when unopened and in their original box.",
    ]
    # a chunk of one sentence: its own vector is that sentence's
    assert passage_sentences("The warranty lasts two years from the day of purchase, parts included.") == []
    assert passage_sentences("Short. Also short.") == []


def test_a_chunk_of_table_rows_only_is_tabular():
    rows = [Block(text=f"Name: Boot {n}; Price: {n} EUR; Colour: brown", kind="row") for n in range(3)]
    mixed = [Block(text="Our boots, in every size and colour.", kind="para"), *rows]
    assert [chunk.tabular for chunk in chunk_blocks(rows)] == [True]
    assert [chunk.tabular for chunk in chunk_blocks(mixed)] == [False]
