from __future__ import annotations

import pytest
from django.core.management import call_command

from knowledge.embedders import active_model_name
from knowledge.models import Chunk, EmbeddingState, SourceKind
from knowledge.retrieval import hybrid_search
from knowledge.services import source_create, source_ingest
from knowledge.tests.factories import make_organization, make_source

pytestmark = pytest.mark.django_db

OTHER_MODEL = "multilingual-e5-small-enpt-q4"


def test_reembed_switches_every_chunk_and_faq_to_the_new_model(settings):
    org = make_organization()
    text = make_source(
        organization=org,
        kind=SourceKind.TEXT,
        text="Boots can be returned within 30 days. Refunds reach your card within five working days.",
    )
    source_ingest(source_id=text.pk)
    faq = source_create(
        organization=org, kind=SourceKind.FAQ, title="FAQ", faq_pairs=[("Do you ship abroad?", "Yes.")]
    )
    source_ingest(source_id=faq.pk)
    old = active_model_name()

    settings.EMBEDDING_MODEL = OTHER_MODEL
    call_command("knowledge_reembed")

    assert EmbeddingState.objects.get().active_model == OTHER_MODEL != old
    assert set(Chunk.objects.values_list("embedding_model", flat=True)) == {OTHER_MODEL}
    assert not Chunk.objects.exclude(embedding_next=None).exists()
    assert not Chunk.objects.exclude(sentence_embeddings_next=None).exists()
    assert [
        len(v) for v in Chunk.objects.filter(source=text).values_list("sentence_embeddings", flat=True)
    ] == [2]
    # (the EN+PT variant prunes only the vocabulary, so English vectors are the same: the name proves the switch)
    hits = hybrid_search(organization_id=org.pk, source_ids=[text.pk], query="return boots")
    assert hits and "30 days" in hits[0].content
    new = make_source(organization=org, kind=SourceKind.TEXT, text="Socks are sold in packs of three.")
    source_ingest(source_id=new.pk)
    assert set(Chunk.objects.filter(source=new).values_list("embedding_model", flat=True)) == {OTHER_MODEL}


def test_ingestion_refuses_to_store_vectors_of_a_retired_model():
    from knowledge.exceptions import TransientIngestError
    from knowledge.parsing import Block
    from knowledge.services import source_ingest_blocks

    org = make_organization()
    source = make_source(organization=org, kind=SourceKind.TEXT, text="x")
    active_model_name()
    EmbeddingState.objects.update(active_model="openai:text-embedding-3-small")  # switched meanwhile
    with pytest.raises(TransientIngestError):
        source_ingest_blocks(source=source, blocks=[Block(text="hello")], progress=lambda p: None)
