"""The SSRF cases every outbound client is tested against, and a redirecting server for hop tests.

Hosts are written as they appear in a URL. Each one must be refused before any connection is made,
by every client that requests a URL a customer chose (config/outbound.py is the one guard).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# (host in a URL, what it is)
REFUSED_HOSTS = [
    ("127.0.0.1", "loopback"),
    ("127.0.0.53", "loopback, not the first address"),
    ("localhost", "a name for loopback"),
    ("[::1]", "IPv6 loopback"),
    ("[::ffff:127.0.0.1]", "IPv4-mapped loopback"),
    ("[::127.0.0.1]", "IPv4-compatible loopback"),
    ("0.0.0.0", "unspecified (reaches this host)"),  # noqa: S104 (a URL host, not a bind address)
    ("[::]", "IPv6 unspecified"),
    ("10.0.0.1", "private 10/8"),
    ("172.16.0.1", "private 172.16/12"),
    ("192.168.1.1", "private 192.168/16"),
    ("100.64.0.1", "carrier-grade NAT 100.64/10"),
    ("169.254.169.254", "cloud metadata"),
    ("[::ffff:169.254.169.254]", "IPv4-mapped metadata"),
    ("[64:ff9b::a9fe:a9fe]", "NAT64 form of the metadata address"),
    ("[64:ff9b::7f00:1]", "NAT64 form of loopback"),
    ("[64:ff9b:1::a9fe:a9fe]", "local-use NAT64 prefix"),
    ("[2002:a9fe:a9fe::1]", "6to4 embedding the metadata address"),
    ("[2002:808:808::1]", "6to4, even embedding a public address"),
    ("[2001:0:4136:e378:8000:63bf:3fff:fdd2]", "Teredo"),
    ("[fd00:ec2::254]", "AWS IPv6 metadata"),
    ("100.100.100.200", "Alibaba Cloud metadata"),
    ("[fc00::1]", "unique local (ULA)"),
    ("[fe80::1]", "IPv6 link-local"),
    ("[fec0::1]", "IPv6 site-local"),
    ("224.0.0.1", "IPv4 multicast"),
    ("[ff02::1]", "IPv6 multicast"),
    ("240.0.0.1", "reserved"),
    ("255.255.255.255", "broadcast"),
    ("192.0.2.1", "documentation (TEST-NET-1)"),
    ("[2001:db8::1]", "IPv6 documentation"),
    ("198.18.0.1", "benchmarking"),
    ("[100::1]", "IPv6 discard-only"),
    ("nonexistent.invalid", "a name that does not resolve"),
]
REFUSED_HOST_IDS = [what for _, what in REFUSED_HOSTS]
# The reasons the guard gives: every refusal above says one of these.
REFUSAL_WORDS = ("private, local or cloud-internal", "cannot be resolved")

# One loopback address the tests let the guard treat as public (settings.OUTBOUND_ALLOWED_NETWORKS): a
# stand-in for an allowed host on the internet, while 127.0.0.1 stays the internal service.
PUBLIC_STAND_IN = "127.0.0.2"


@dataclass
class Redirector:
    """Answers every GET and POST with a redirect to ``target`` + the requested path."""

    target: str
    status: int = 307
    hits: list[str] = field(default_factory=list)
    hosts: list[str] = field(default_factory=list)  # the Host header of each request
    base: str = ""


@contextmanager
def serve_redirects(redirector: Redirector, host: str = PUBLIC_STAND_IN) -> Iterator[Redirector]:
    class Handler(BaseHTTPRequestHandler):
        def _redirect(self) -> None:
            redirector.hits.append(self.path)
            redirector.hosts.append(self.headers.get("Host", ""))
            length = int(self.headers.get("content-length") or 0)
            if length:
                self.rfile.read(length)
            self.send_response(redirector.status)
            self.send_header("Location", redirector.target + self.path)
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_GET = do_POST = _redirect

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer((host, 0), Handler)
    redirector.base = f"http://{host}:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield redirector
    finally:
        server.shutdown()
        server.server_close()
