"""Test support: a tiny local website for crawling tests and a local reranker (threads on 127.0.0.1)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def page(title: str, body: str) -> bytes:
    return f"<html><head><title>{title}</title></head><body><main>{body}</main></body></html>".encode()


class Site:
    def __init__(
        self, pages: dict[str, tuple[int, str, bytes] | bytes], redirects: dict[str, str] | None = None
    ):
        self.pages = pages
        self.redirects = redirects or {}
        self.hits: list[str] = []
        self.base = ""


@contextmanager
def serve(site: Site) -> Iterator[Site]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            site.hits.append(self.path)
            if self.path in site.redirects:
                self.send_response(302)
                self.send_header("Location", site.redirects[self.path])
                self.end_headers()
                return
            entry = site.pages.get(self.path)
            if entry is None:
                self.send_response(404)
                self.end_headers()
                return
            status, content_type, body = (
                entry if isinstance(entry, tuple) else (200, "text/html; charset=utf-8", entry)
            )
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    site.base = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield site
    finally:
        server.shutdown()
        server.server_close()


class Reranker:
    """A local stand-in for a ``/rerank`` endpoint: scores each document by how often it contains
    ``favourite`` (so a test knows the order to expect) and records every request.

    ``shape``: ``"results"`` answers ``{"results": [{"index", "relevance_score"}]}`` (Cohere, Jina, vLLM);
    ``"tei"`` reads ``texts``, refuses a body without them with 422 and answers a bare list
    ``[{"index", "score"}]`` (text-embeddings-inference). ``delay`` stalls each answer; ``status`` other
    than 200 answers that error."""

    def __init__(self, *, favourite: str, shape: str = "results", delay: float = 0.0, status: int = 200):
        self.favourite = favourite
        self.shape = shape
        self.delay = delay
        self.status = status
        self.requests: list[tuple[str, dict, dict[str, str]]] = []  # (path, body, headers)
        self.base = ""

    def answer(self, body: dict) -> tuple[int, object]:
        if self.status != 200:
            return self.status, {"error": "the reranker is broken"}
        documents = body.get("texts") if self.shape == "tei" else body.get("documents")
        if not isinstance(documents, list):
            return 422, {"error": "missing field"}
        scores = [text.lower().count(self.favourite) / 10 for text in documents]
        ranked = sorted(range(len(documents)), key=lambda index: -scores[index])
        if self.shape == "tei":
            return 200, [{"index": index, "score": scores[index]} for index in ranked]
        return 200, {"results": [{"index": index, "relevance_score": scores[index]} for index in ranked]}


@contextmanager
def serve_reranker(reranker: Reranker) -> Iterator[Reranker]:
    import json
    import time

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
            reranker.requests.append((self.path, body, dict(self.headers)))
            if reranker.delay:
                time.sleep(reranker.delay)
            status, payload = reranker.answer(body) if self.path == "/v1/rerank" else (404, {"error": "?"})
            data = json.dumps(payload).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except OSError:
                pass  # the client gave up waiting (timeout tests)

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    reranker.base = f"http://127.0.0.1:{server.server_address[1]}/v1"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield reranker
    finally:
        server.shutdown()
        server.server_close()
