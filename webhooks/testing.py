"""Test support for webhooks: a customer's receiver on loopback that checks every signature, answers as a
test tells it to, and processes each event id once (the idempotency a real receiver implements).

It listens on ``PUBLIC_STAND_IN`` (config/testing.py), the loopback address the tests let the outbound
guard treat as public, so the SSRF guard stays on for everything else. The benchmark uses it too.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from config.testing import PUBLIC_STAND_IN
from webhooks import signing


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    status: int

    @property
    def event(self) -> dict:
        return json.loads(self.body)


@dataclass
class WebhookReceiver:
    """``statuses`` is consumed one per request (then 200); ``secret`` checks each signature when set."""

    host: str = PUBLIC_STAND_IN
    statuses: list[int] = field(default_factory=list)
    secret: str = ""
    record_bodies: bool = True
    requests: list[Received] = field(default_factory=list)
    processed: dict[str, dict] = field(default_factory=dict)  # event id -> event, processed once
    deliveries_per_event: Counter = field(default_factory=Counter)
    bad_signatures: int = 0
    url: str = ""
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _arrived: threading.Condition = field(init=False)

    def __post_init__(self) -> None:
        self._arrived = threading.Condition(self._lock)

    def handle(self, headers: dict[str, str], body: bytes) -> int:
        with self._lock:
            status = self.statuses.pop(0) if self.statuses else 200
            if self.secret and not signing.verify(
                header=headers.get(signing.SIGNATURE_HEADER, ""), body=body, secret=self.secret
            ):
                self.bad_signatures += 1
                status = 400
            event_id = headers.get(signing.EVENT_ID_HEADER, "")
            self.deliveries_per_event[event_id] += 1
            if 200 <= status < 300 and event_id not in self.processed:
                self.processed[event_id] = json.loads(body) if self.record_bodies else {}
            if self.record_bodies:
                self.requests.append(Received(headers=headers, body=body, status=status))
            self._arrived.notify_all()
            return status

    def wait_for(self, condition: Callable[[WebhookReceiver], bool], timeout: float = 30.0) -> None:
        """Block until ``condition(self)`` holds (raises on timeout with what arrived)."""
        with self._arrived:
            if not self._arrived.wait_for(lambda: condition(self), timeout=timeout):
                raise AssertionError(
                    f"timed out; {sum(self.deliveries_per_event.values())} requests, "
                    f"{len(self.processed)} events processed, statuses left {self.statuses}"
                )


def _handler(receiver: WebhookReceiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as real receivers

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length") or 0))
            status = receiver.handle({k: v for k, v in self.headers.items()}, body)
            answer = json.dumps({"received": status < 300}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args: object) -> None:
            pass

    return Handler


def serve(receiver: WebhookReceiver, port: int = 0) -> ThreadingHTTPServer:
    """Start ``receiver`` on a thread; its ``url`` is set. Stop with ``server.shutdown()``."""
    server = ThreadingHTTPServer((receiver.host, port), _handler(receiver))
    server.daemon_threads = True
    receiver.url = f"http://{receiver.host}:{server.server_address[1]}/hooks/parlor"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture
def webhook_receiver(settings) -> Iterator[WebhookReceiver]:  # type: ignore[no-untyped-def]
    """A receiver on the public stand-in address, which the outbound guard lets through for this test."""
    settings.OUTBOUND_ALLOWED_NETWORKS = [f"{PUBLIC_STAND_IN}/32"]
    receiver = WebhookReceiver()
    server = serve(receiver)
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
