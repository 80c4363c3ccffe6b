"""Full-text search in the knowledge's own language: each source's chunks are indexed with the text search
configuration of the language they are written in (told at ingest), and a question is stemmed with every
configuration among the searched sources. Real PostgreSQL, ingestion and retrieval."""

from __future__ import annotations

import pytest
from django.db import connection

from knowledge.models import Chunk, SourceKind
from knowledge.questions import question_shape, text_language
from knowledge.retrieval import ranked_ids
from knowledge.selectors import knowledge_language
from knowledge.services import source_ingest
from knowledge.tests.factories import make_organization, make_source

pytestmark = pytest.mark.django_db

GERMAN = (
    "Rücksendungen sind innerhalb von 30 Tagen möglich. Die Rückerstattung wird nach dem Eingang der "
    "Ware auf die ursprüngliche Zahlungsart gebucht. Bitte legen Sie den Lieferschein bei."
)
ENGLISH = "Boots can be returned within 30 days with the receipt. Refunds go back to the original card."


def _ingest(organization, title: str, text: str):
    source = source_ingest(
        source_id=make_source(organization=organization, kind=SourceKind.TEXT, title=title, text=text).pk
    )
    assert source.status == "ready", source.status_reason
    return source


def test_each_source_is_indexed_in_the_language_it_is_written_in() -> None:
    org = make_organization()
    german, english = _ingest(org, "Rückgabe", GERMAN), _ingest(org, "Returns", ENGLISH)
    assert (german.text_search_config, english.text_search_config) == ("german", "english")
    with connection.cursor() as cursor:
        cursor.execute("SELECT DISTINCT lexeme FROM knowledge_chunkterm WHERE source_id = %s", [german.pk])
        lexemes = {row[0] for row in cursor.fetchall()}
    assert "ruckerstatt" in lexemes  # German stemming ("Rückerstattung"), German stop words dropped
    assert not {"die", "der", "nach", "auf"} & lexemes
    # The bot's knowledge language: the one most of its chunks are written in.
    assert knowledge_language(organization_id=org.pk, source_ids=[german.pk]) == "german"
    assert knowledge_language(organization_id=org.pk, source_ids=[]) == ""


def test_a_german_question_finds_another_form_of_the_word_in_a_german_source() -> None:
    org = make_organization()
    german, english = _ingest(org, "Rückgabe", GERMAN), _ingest(org, "Returns", ENGLISH)
    # "Rückerstattungen" (plural) is stemmed as the chunk's "Rückerstattung" only by the German configuration.
    found = ranked_ids(
        organization_id=org.pk,
        source_ids=[german.pk, english.pk],
        query="Wann kommen Rückerstattungen?",
        limit=5,
    )
    chunk_sources = dict(Chunk.objects.values_list("pk", "source_id"))
    assert [chunk_sources[chunk_id] for chunk_id in found.lexical][:1] == [german.pk]


def test_a_forced_configuration_applies_to_every_source(settings) -> None:
    settings.KNOWLEDGE_FTS_CONFIG = "simple"
    assert _ingest(make_organization(), "Rückgabe", GERMAN).text_search_config == "simple"


def test_the_language_of_a_text_and_of_a_question() -> None:
    assert text_language(GERMAN) == "german"
    assert text_language("Les retours sont possibles pendant 30 jours avec le ticket de caisse.") == "french"
    assert text_language("") == "english"
    assert question_shape("¿Cuánto tarda el reembolso de un pedido internacional?").language == "spanish"
    # A few words can be ambiguous ("mi" is Spanish and Italian); what counts is that it is not English.
    assert question_shape("¿cómo cambio mi contraseña?").language != "english"
    assert question_shape("How do I change my password?").language == "english"
