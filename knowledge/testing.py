"""Test support: a tiny local website for crawling tests (runs in a thread on 127.0.0.1)."""

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
