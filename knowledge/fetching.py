"""Fetching web pages for URL and website sources, safely.

SSRF protection: every request (and every redirect hop, which is followed by hand) resolves the host and
refuses it unless *all* its addresses are public — no private, loopback, link-local (cloud metadata at
169.254.169.254 included), shared, multicast, reserved or unspecified ranges. Responses are capped in size
and time. ``KNOWLEDGE_ALLOW_PRIVATE_URLS`` lifts the address check for tests that crawl a local server.
"""

from __future__ import annotations

import ipaddress
import socket
import time
import urllib.robotparser
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urldefrag, urljoin, urlsplit

import httpx
from django.conf import settings

from knowledge.exceptions import IngestError, TransientIngestError, UnsafeURLError

USER_AGENT = "ParlorBot/1.0 (+knowledge ingestion)"
MAX_REDIRECTS = 5
Resolver = Callable[[str, int], list[str]]


def system_resolver(host: str, port: int) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    except socket.gaierror as exc:
        raise IngestError(f"The address {host!r} cannot be resolved.") from exc
    return [info[4][0] for info in infos]


_METADATA = {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}


def is_public_address(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return not (
        ip in _METADATA
        or ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
        or (isinstance(ip, ipaddress.IPv4Address) and ip in ipaddress.ip_network("100.64.0.0/10"))
    )


def check_url(url: str, *, resolver: Resolver | None = None) -> None:
    """Raise ``UnsafeURLError`` unless ``url`` is http(s) to a host whose every address is public."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UnsafeURLError("Only http:// and https:// addresses can be fetched.")
    if parts.username or parts.password:
        raise UnsafeURLError("Addresses with a user name or password are not fetched.")
    if settings.KNOWLEDGE_ALLOW_PRIVATE_URLS:
        return
    addresses = (resolver or system_resolver)(
        parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)
    )
    if not addresses or not all(is_public_address(address) for address in addresses):
        raise UnsafeURLError(
            f"{parts.hostname} points to a private, local or cloud-internal address; only public sites can be added."
        )


@dataclass
class FetchedPage:
    url: str  # after redirects
    status: int
    content_type: str
    body: bytes


def fetch(
    url: str, *, client: httpx.Client, resolver: Resolver | None = None, deadline: float | None = None
) -> FetchedPage:
    """GET ``url``, following up to 5 redirects, each hop checked; size- and time-capped."""
    max_bytes = settings.KNOWLEDGE_FETCH_MAX_BYTES
    for _ in range(MAX_REDIRECTS + 1):
        check_url(url, resolver=resolver)
        if deadline is not None and time.monotonic() > deadline:
            raise IngestError("Fetching took too long; try fewer pages.")
        try:
            with client.stream("GET", url, follow_redirects=False) as response:
                if response.is_redirect:
                    location = response.headers.get("location", "")
                    url = urljoin(url, location)
                    continue
                if response.status_code in (429, 502, 503, 504):
                    raise TransientIngestError(f"{url} answered {response.status_code}")
                length = int(response.headers.get("content-length") or 0)
                if length > max_bytes:
                    raise IngestError(f"{url} is larger than {max_bytes // 1_000_000} MB.")
                chunks = []
                size = 0
                for part in response.iter_bytes():
                    size += len(part)
                    if size > max_bytes:
                        raise IngestError(f"{url} is larger than {max_bytes // 1_000_000} MB.")
                    chunks.append(part)
                return FetchedPage(
                    url=str(response.url),
                    status=response.status_code,
                    content_type=response.headers.get("content-type", "").split(";")[0].strip().lower(),
                    body=b"".join(chunks),
                )
        except httpx.TimeoutException as exc:
            raise TransientIngestError(f"{url} timed out") from exc
        except httpx.TransportError as exc:
            raise TransientIngestError(f"{url} could not be reached: {exc}") from exc
    raise IngestError(f"{url} redirects too many times.")


def make_client() -> httpx.Client:
    timeout = settings.KNOWLEDGE_FETCH_TIMEOUT
    return httpx.Client(
        timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
        headers={
            "User-Agent": USER_AGENT,
            "Accept": "text/html,application/xhtml+xml,text/plain;q=0.9,*/*;q=0.5",
        },
        trust_env=False,  # never route through an environment proxy that might reach internal hosts
    )


@dataclass
class CrawlResult:
    pages: list[FetchedPage] = field(default_factory=list)
    skipped_by_robots: int = 0


def _robots(
    start: str, *, client: httpx.Client, resolver: Resolver | None
) -> urllib.robotparser.RobotFileParser:
    parts = urlsplit(start)
    robots = urllib.robotparser.RobotFileParser()
    robots_url = f"{parts.scheme}://{parts.netloc}/robots.txt"
    try:
        page = fetch(robots_url, client=client, resolver=resolver)
        lines = page.body.decode("utf-8", "replace").splitlines() if page.status == 200 else []
    except (IngestError, TransientIngestError):
        lines = []
    robots.parse(lines)
    return robots


def _sitemap_urls(
    start: str, robots, *, client: httpx.Client, resolver: Resolver | None, limit: int
) -> list[str]:
    from bs4 import BeautifulSoup

    parts = urlsplit(start)
    candidates = list(robots.site_maps() or []) or [f"{parts.scheme}://{parts.netloc}/sitemap.xml"]
    if start.endswith(".xml"):
        candidates = [start]
    urls: list[str] = []
    for sitemap in candidates[:3]:
        try:
            page = fetch(sitemap, client=client, resolver=resolver)
        except (IngestError, TransientIngestError):
            continue
        if page.status != 200:
            continue
        soup = BeautifulSoup(page.body, "xml")
        for loc in soup.find_all("loc"):
            url = loc.get_text(strip=True)
            if urlsplit(url).netloc == parts.netloc and not url.endswith(".xml"):
                urls.append(url)
            if len(urls) >= limit:
                return urls
    return urls


def _links(page: FetchedPage) -> list[str]:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(page.body, "lxml")
    out = []
    for anchor in soup.find_all("a", href=True):
        url, _ = urldefrag(urljoin(page.url, anchor["href"]))
        if urlsplit(url).scheme in ("http", "https"):
            out.append(url)
    return out


def crawl(
    start: str,
    *,
    max_pages: int,
    max_depth: int,
    resolver: Resolver | None = None,
    on_page: Callable[[int], None] | None = None,
    time_budget: float = 240.0,
) -> CrawlResult:
    """Pages of one site: the sitemap's URLs if it has one, else a breadth-first same-site crawl."""
    check_url(start, resolver=resolver)
    deadline = time.monotonic() + time_budget
    result = CrawlResult()
    host = urlsplit(start).netloc
    with make_client() as client:
        robots = _robots(start, client=client, resolver=resolver)
        queue: list[tuple[str, int]] = [(start, 0)]
        from_sitemap = _sitemap_urls(start, robots, client=client, resolver=resolver, limit=max_pages)
        if from_sitemap:
            queue = [(url, max_depth) for url in from_sitemap]  # depth max: sitemap pages are not expanded
        seen = {url for url, _ in queue}
        while queue and len(result.pages) < max_pages and time.monotonic() < deadline:
            url, depth = queue.pop(0)
            if not robots.can_fetch(USER_AGENT, url):
                result.skipped_by_robots += 1
                continue
            try:
                page = fetch(url, client=client, resolver=resolver, deadline=deadline)
            except UnsafeURLError:
                continue  # a link or redirect to an internal address is skipped, never fetched
            except (IngestError, TransientIngestError):
                if url == start and not result.pages and not from_sitemap:
                    raise
                continue
            if page.status != 200 or not page.content_type.startswith(
                ("text/html", "application/xhtml", "text/plain")
            ):
                continue
            result.pages.append(page)
            if on_page:
                on_page(len(result.pages))
            if depth < max_depth and page.content_type.startswith(("text/html", "application/xhtml")):
                for link in _links(page):
                    if urlsplit(link).netloc == host and link not in seen:
                        seen.add(link)
                        queue.append((link, depth + 1))
    return result
