from __future__ import annotations

import pytest

from knowledge import embedders
from knowledge.embedders import active_embedder, embed_search_query


@pytest.mark.django_db
def test_a_question_is_embedded_once_and_matches_the_model() -> None:
    embedders._query_vector.cache_clear()
    first = embed_search_query("How long do I have to return boots?")
    again = embed_search_query("How long do I have to return boots?")
    info = embedders._query_vector.cache_info()
    assert (info.misses, info.hits) == (1, 1)
    assert (
        first == again == pytest.approx(active_embedder().embed_query("How long do I have to return boots?"))
    )
    assert embed_search_query("Shipping to Switzerland?") != first
