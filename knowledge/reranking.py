"""An optional external reranker: a cross-encoder behind an HTTP ``/rerank`` endpoint reorders the fused
candidates of ``hybrid_search``.

Off unless ``KNOWLEDGE_RERANK_URL`` is set. text-embeddings-inference, vLLM, Jina, Cohere (and the
proxies that imitate them) share one protocol: ``POST {base}/rerank`` with the query and the candidates'
texts, answered with a relevance score per candidate index. Two quirks of text-embeddings-inference are
handled: it answers a bare list ``[{"index", "score"}]`` instead of ``{"results": [{"index",
"relevance_score"}]}``, and it reads the texts from ``texts`` instead of ``documents``: a 4xx answer to
the ``documents`` form is tried once more in its form, which is then kept for that address.

Reranking must never cost a visitor the answer: a timeout, an error or a malformed answer logs a warning
and leaves the fused order, and after a failure the reranker is skipped for ``PAUSE_AFTER_FAILURE``
seconds, so a reranker that is down does not add its timeout to every message.

The address comes from the deployment's environment, not from a tenant, and usually points at a
reranker next to Parlor (a sidecar or a LAN host), like ``EMBEDDING_BASE_URL``: requests go through the
outbound guard (``config/outbound.py``) with private addresses allowed, which still refuses link-local
and cloud metadata addresses and never follows a redirect.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from functools import lru_cache

import httpx
from django.conf import settings

from config import outbound

logger = logging.getLogger(__name__)

PAUSE_AFTER_FAILURE = 30.0  # seconds without reranking after a failed call
MAX_DOCUMENT_CHARS = 2000  # a chunk is at most ~1,200 characters and its heading; rerankers truncate anyway

_state_lock = threading.Lock()
_paused_until: dict[str, float] = {}  # address → monotonic time until which it is skipped
_texts_form: set[str] = set()  # addresses that take text-embeddings-inference's request form


class RerankFailed(Exception):
    pass


def rerank_enabled() -> bool:
    return bool(settings.KNOWLEDGE_RERANK_URL)


def rerank_endpoint(base_url: str) -> str:
    """``{base}/rerank``; an address that already ends with ``/rerank`` is taken as it is."""
    base = base_url.rstrip("/")
    return base if base.endswith("/rerank") else f"{base}/rerank"


@lru_cache(maxsize=4)
def _client(timeout: float) -> httpx.Client:
    # One pooled client per process (and timeout): the reranker sits next to Parlor, so keeping its
    # connection alive saves a handshake per message.
    return outbound.client(allow_private=True, timeout=httpx.Timeout(timeout))


def _request_body(query: str, documents: list[str], *, texts_form: bool) -> dict:
    if texts_form:  # text-embeddings-inference
        return {"query": query, "texts": documents, "truncate": True}
    body: dict = {"query": query, "documents": documents}
    if settings.KNOWLEDGE_RERANK_MODEL:
        body["model"] = settings.KNOWLEDGE_RERANK_MODEL
    return body


def _scores(payload: object, count: int) -> dict[int, float]:
    """Each returned candidate's score by its index, from either answer shape."""
    items = payload.get("results") if isinstance(payload, dict) else payload
    if not isinstance(items, list):
        raise RerankFailed("the answer has no list of results")
    scores: dict[int, float] = {}
    for item in items:
        if not isinstance(item, dict):
            raise RerankFailed("a result is not an object")
        index = item.get("index")
        score = item.get("relevance_score", item.get("score"))
        if not isinstance(index, int) or not 0 <= index < count or not isinstance(score, int | float):
            raise RerankFailed(f"a result has no valid index and score: {str(item)[:100]}")
        scores[index] = float(score)
    return scores


def _post(url: str, query: str, documents: list[str]) -> dict[int, float]:
    headers = {}
    if settings.KNOWLEDGE_RERANK_API_KEY:
        headers["Authorization"] = f"Bearer {settings.KNOWLEDGE_RERANK_API_KEY}"
    client = _client(float(settings.KNOWLEDGE_RERANK_TIMEOUT))
    texts_form = url in _texts_form
    response = client.post(url, json=_request_body(query, documents, texts_form=texts_form), headers=headers)
    if response.status_code in (400, 422) and not texts_form:
        # text-embeddings-inference refuses a body without ``texts`` (422): ask again in its form.
        retry = client.post(url, json=_request_body(query, documents, texts_form=True), headers=headers)
        if retry.is_success:
            with _state_lock:
                _texts_form.add(url)
            response = retry
    if not response.is_success:
        raise RerankFailed(f"HTTP {response.status_code}: {response.text[:200]}")
    try:
        payload = response.json()
    except ValueError:
        raise RerankFailed("the answer is not JSON") from None
    return _scores(payload, len(documents))


def rerank_order(query: str, documents: Sequence[str]) -> list[int] | None:
    """The indexes of ``documents``, most relevant to ``query`` first, as the configured reranker
    orders them (candidates it did not score keep their order, after the scored ones); None when
    reranking is off, paused after a failure, or failed now (the caller keeps its own order)."""
    if not rerank_enabled() or not documents:
        return None
    url = rerank_endpoint(settings.KNOWLEDGE_RERANK_URL)
    if time.monotonic() < _paused_until.get(url, 0.0):
        return None
    clipped = [text[:MAX_DOCUMENT_CHARS] for text in documents]
    started = time.monotonic()
    try:
        scores = _post(url, query, clipped)
    except (httpx.HTTPError, outbound.OutboundRefused, RerankFailed) as exc:
        with _state_lock:
            _paused_until[url] = time.monotonic() + PAUSE_AFTER_FAILURE
        logger.warning(
            "Reranker %s failed after %.0f ms, keeping the fused order (skipped for %.0f s): %s",
            url, (time.monotonic() - started) * 1000, PAUSE_AFTER_FAILURE, exc or type(exc).__name__,
        )  # fmt: skip
        return None
    return sorted(
        range(len(documents)), key=lambda index: (index not in scores, -scores.get(index, 0.0), index)
    )


def forget_failures() -> None:
    """Try the reranker again at once (tests; an operator who just fixed it can also restart)."""
    with _state_lock:
        _paused_until.clear()
        _texts_form.clear()
