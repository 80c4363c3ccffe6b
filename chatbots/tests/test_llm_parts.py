"""Offline provider, price table and the fake server's other endpoints and command."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import openai
import pytest
from django.core.checks import run_checks

from chatbots.llm import Usage
from chatbots.llm.offline import choose_quotes, compose, compose_answer, distinct_passages
from chatbots.llm.pricing import PriceTableError, estimate_cost, parse_price_table, price_for
from chatbots.models import Bot
from chatbots.tests.factories import SERVER_KEY
from knowledge.retrieval import RetrievedChunk

MANUAL = (  # four sentences as the search splits them (knowledge.chunking.passage_sentences)
    "Welcome to the owner's manual of the city e-bike. Charging takes about four hours with the supplied "
    "cable. The battery lasts 60 kilometres on a full charge. Clean and oil the chain every month."
)


def passage(
    content: str, title: str = "Manual", url: str | None = None, page: int | None = None, *,
    chunk_id: int = 1, source_id: int = 1, similarities: tuple[float, ...] = (),
):  # fmt: skip
    return RetrievedChunk(
        chunk_id=chunk_id, source_id=source_id, source_title=title, url=url, page=page, content=content,
        score=1, sentence_similarities=similarities,
    )  # fmt: skip


def test_offline_answer_quotes_the_sentence_most_similar_to_the_question_not_the_whole_chunk():
    # Similarities as the search returns them (one per sentence of the chunk): the second sentence
    # answers "How far can I ride?" though it shares no word with the question.
    manual = passage(MANUAL, similarities=(0.12, 0.31, 0.71, 0.05))
    (quote,) = choose_quotes("How far can I ride?", [manual])
    assert quote.text == "The battery lasts 60 kilometres on a full charge."
    assert quote.similarity == 0.71


def test_offline_answer_without_sentence_vectors_quotes_the_sentence_sharing_the_question_words():
    (quote,) = choose_quotes("How long does charging take?", [passage(MANUAL)])
    assert "Charging takes about four hours" in quote.text and "chain" not in quote.text
    (quote,) = choose_quotes("battery range", [passage(MANUAL, similarities=(0.4,))])  # the chunk's own
    assert quote.text == "The battery lasts 60 kilometres on a full charge."


def test_offline_answer_joins_sentences_about_as_similar_and_marks_what_it_left_out():
    manual = passage(MANUAL, similarities=(0.6, 0.05, 0.1, 0.58))
    (quote,) = choose_quotes("Getting started and maintenance", [manual])
    assert (
        quote.text
        == "Welcome to the owner's manual of the city e-bike. … Clean and oil the chain every month."
    )


def test_offline_answer_drops_a_near_identical_passage_from_another_source():
    page = "Returns are free within 30 days. Bring the receipt to any store; refunds take five days."
    web_copy = passage(page, "Returns (web)", chunk_id=1, source_id=1, similarities=(0.7, 0.4))
    pdf_copy = passage(  # the PDF of the same page: other case, spacing and a stray page number
        page.upper().replace(" ", "  ") + " 3",
        "Returns.pdf",
        chunk_id=2,
        source_id=2,
        similarities=(0.7, 0.4),
    )
    shipping = passage(
        "Refunds go back to the card you paid with. International returns take longer.",
        "Shipping", chunk_id=3, source_id=3, similarities=(0.68, 0.3),
    )  # fmt: skip
    assert distinct_passages([web_copy, pdf_copy, shipping]) == [web_copy, shipping]
    answer = compose(
        bot=Bot(name="b"), question="How do refunds work?", passages=[web_copy, pdf_copy, shipping]
    )
    assert answer.used_passages == (1, 3)
    assert "Returns.pdf" not in answer.text and answer.text.count("[") == 2


def test_offline_answer_leaves_out_a_passage_far_less_similar_than_the_best():
    hours = passage(
        "The store opens at 9 am on weekdays.", "Hours", chunk_id=1, source_id=1, similarities=(0.74,)
    )
    parking = passage(
        "Parking is free behind the store.", "Parking", chunk_id=2, source_id=2, similarities=(0.31,)
    )
    answer = compose(bot=Bot(name="b"), question="When do you open?", passages=[hours, parking])
    assert answer.used_passages == (1,) and "Parking" not in answer.text


def test_offline_answer_quotes_a_sentence_shared_by_overlapping_chunks_once():
    shared = "Charging takes about four hours with the supplied cable."
    first = passage(f"The battery lasts 60 kilometres. {shared}", chunk_id=1, similarities=(0.3, 0.8))
    second = passage(f"{shared} A fast charger halves that time.", chunk_id=2, similarities=(0.8, 0.78))
    quotes = choose_quotes("How long does charging take?", [first, second])
    assert [quote.text.count(shared) for quote in quotes] == [1, 0]
    assert quotes[1].text == "A fast charger halves that time."


def test_offline_answer_names_its_sources_and_says_no_model_is_connected():
    bot = Bot(name="b")
    answer = compose_answer(
        bot=bot, question="battery", passages=[passage(MANUAL, "E-bike manual", "https://x.test/m", 3)]
    )
    assert answer.startswith("No language model is connected")
    assert "[1]" in answer and "Source: E-bike manual, page 3 (https://x.test/m)" in answer
    nothing = compose_answer(bot=Bot(name="b", fallback_reply="Call us at 555."), question="x", passages=[])
    assert nothing.startswith("Call us at 555.") and "No language model is connected" in nothing


def test_cost_comes_from_the_price_table_and_operators_can_extend_it(settings):
    usage = Usage(prompt_tokens=1_000_000, completion_tokens=1_000_000)
    assert estimate_cost("gpt-4o-mini", usage) == Decimal("0.75")
    assert estimate_cost("gpt-4o-mini-2024-07-18", usage) == Decimal("0.75")  # dated snapshot: prefix
    assert estimate_cost("openai/gpt-4o-mini", usage) == Decimal("0.75")  # OpenRouter naming
    assert estimate_cost("my-local-llama", usage) is None  # unknown, not free
    settings.LLM_PRICES = '{"my-local-llama": [0, 0], "gpt-4o-mini": [1, 2]}'
    assert estimate_cost("my-local-llama", usage) == Decimal(0)
    assert price_for("gpt-4o-mini") == (Decimal(1), Decimal(2))


def test_a_malformed_price_table_is_reported(settings):
    with pytest.raises(PriceTableError, match="JSON"):
        parse_price_table("{nope")
    with pytest.raises(PriceTableError, match="input"):
        parse_price_table('{"m": 3}')
    settings.LLM_PRICES = '{"m": [1]}'
    assert any(error.id == "chatbots.E001" for error in run_checks())


def test_fake_server_serves_models_embeddings_and_plain_completions(fake_llm):
    client = openai.OpenAI(base_url=fake_llm.base_url, api_key=SERVER_KEY, max_retries=0)
    assert "fake-chat" in [m.id for m in client.models.list()]
    vectors = client.embeddings.create(model="fake-embed", input=["red bicycle", "red bicycle", "tax law"])
    a, b, c = (item.embedding for item in vectors.data)
    assert a == b and a != c and len(a) == 256
    completion = client.chat.completions.create(
        model="fake-chat?reply=Hello+there", messages=[{"role": "user", "content": "hi"}]
    )
    assert completion.choices[0].message.content == "Hello there" and completion.usage.completion_tokens == 2


def test_fake_llm_command_serves_by_hand():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    manage = Path(__file__).resolve().parents[2] / "manage.py"
    process = subprocess.Popen(
        [sys.executable, str(manage), "fake_llm", "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        client = openai.OpenAI(
            base_url=f"http://127.0.0.1:{port}/v1", api_key="any", max_retries=0, timeout=2
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                stream = client.chat.completions.create(
                    model="fake-chat?reply=a+b+c", messages=[{"role": "user", "content": "x"}], stream=True
                )
                break
            except openai.APIConnectionError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise
                time.sleep(0.2)
        text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
        assert text == "a b c"
    finally:
        process.terminate()
        process.wait(10)


def test_retry_after_headers_in_seconds_milliseconds_and_dates():
    import email.utils

    import httpx

    from chatbots.llm.errors import retry_after_seconds

    def response(**headers):
        return httpx.Response(429, headers=headers)

    assert retry_after_seconds(response(**{"retry-after": "3"})) == 3.0
    assert retry_after_seconds(response(**{"retry-after-ms": "250", "retry-after": "9"})) == 0.25
    in_ten = email.utils.formatdate(time.time() + 10, usegmt=True)
    assert 8 <= retry_after_seconds(response(**{"retry-after": in_ten})) <= 10
    assert retry_after_seconds(response(**{"retry-after": "soon"})) is None
    assert retry_after_seconds(response()) is None


def test_redact_removes_given_secrets_and_key_shaped_strings():
    from chatbots.llm import redact

    text = "bad key my-custom-secret-value and sk-proj-abcdefghijklmnop1234 rejected"
    cleaned = redact(text, ["my-custom-secret-value"])
    assert "my-custom-secret-value" not in cleaned and "sk-proj-abcdefghijklmnop1234" not in cleaned
    assert cleaned.startswith("bad key [redacted]")


def test_offline_answer_quotes_a_lead_in_only_with_what_it_leads_to():
    steps = (
        "Pausing stops all deliveries for a while.\n"
        "To pause a subscription in the Lumen app:\n"
        "Open the Deliveries tab and tap Pause deliveries.\n"
        "A pause lasts between one and twelve weeks."
    )
    (quote,) = choose_quotes("How do I pause?", [passage(steps, similarities=(0.5, 0.72, 0.6, 0.66))])
    assert quote.text == (
        "To pause a subscription in the Lumen app: Open the Deliveries tab and tap Pause deliveries. "
        "A pause lasts between one and twelve weeks."
    )
    (quote,) = choose_quotes(
        "How long can a pause last?", [passage(steps, similarities=(0.5, 0.62, 0.3, 0.66))]
    )
    assert (
        quote.text == "A pause lasts between one and twelve weeks."
    )  # not "… To pause a subscription in the Lumen app:"


def test_offline_answer_quotes_a_sentence_that_refers_back_with_the_one_it_refers_to():
    guide = (
        "Copy the embed snippet from the bot's page and paste it into your website's HTML. "
        "It is one script tag that loads the widget. Allowed origins list the sites that may show it."
    )
    (quote,) = choose_quotes(
        "How do I put the bot on my site?", [passage(guide, similarities=(0.7, 0.4, 0.3))]
    )
    assert quote.text.endswith("It is one script tag that loads the widget.")
    assert "Allowed origins" not in quote.text


def test_offline_answer_drops_a_copy_cut_into_chunks_elsewhere():
    web = passage(
        "Returns are free within 30 days. Bring the receipt to any store. Refunds take five working days.",
        "Returns (web)", chunk_id=1, source_id=1,
    )  # fmt: skip
    pdf = passage(
        "Returns are free within 30 days. Bring the receipt to any store.",
        "Returns.pdf",
        chunk_id=2,
        source_id=2,
    )
    assert distinct_passages([web, pdf]) == [web]


def test_cited_passages_reads_the_numbers_the_prompt_gave():
    from types import SimpleNamespace

    from chatbots.llm.prompt import cited_passages

    passages = [SimpleNamespace(chunk_id=pk) for pk in (11, 12, 13)]
    assert cited_passages("Yes [2], and see [1] and again [2].", passages) == (12, 11)
    assert cited_passages("No citations here.", passages) is None
    assert cited_passages("Out of range [7] and [0].", passages) is None
