"""Fetching web pages for URL and website sources, safely.

SSRF protection is Parlor's one outbound guard (config/outbound.py): every connection, including each
redirect hop (followed by hand, up to 5), resolves the host, refuses it unless *all* its addresses are
public, and connects to the checked address. Responses are capped in size and time.
``KNOWLEDGE_ALLOW_PRIVATE_URLS`` lets loopback and private networks through, for tests that crawl a
local server.
"""

from __future__ import annotations

import time
import urllib.robotparser
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import BinaryIO
from urllib.parse import urldefrag, urljoin, urlsplit

import httpx
from django.conf import settings

from config import outbound
from knowledge.exceptions import IngestError, TransientIngestError, UnsafeURLError

USER_AGENT = "ParlorBot/1.0 (+knowledge ingestion)"
MAX_REDIRECTS = 5


@contextmanager
def _unsafe_as_ingest_error() -> Iterator[None]:
    try:
        yield
    except outbound.OutboundRefused as exc:
        raise UnsafeURLError(str(exc)) from None


def check_url(url: str) -> None:
    """Raise ``UnsafeURLError`` unless ``url`` is http(s) to a host whose every address is public."""
    with _unsafe_as_ingest_error():
        outbound.check_url(url, allow_private=settings.KNOWLEDGE_ALLOW_PRIVATE_URLS)


@dataclass
class FetchedPage:
    url: str  # after redirects
    status: int
    content_type: str
    body: bytes


def fetch(
    url: str,
    *,
    client: httpx.Client,
    deadline: float | None = None,
    max_bytes: int | None = None,
    sink: BinaryIO | None = None,
) -> FetchedPage:
    """GET ``url``, following up to 5 redirects, each hop checked; size- and time-capped. With ``sink``
    the body is written there instead of kept in memory (a recording of hundreds of MB)."""
    max_bytes = max_bytes or settings.KNOWLEDGE_FETCH_MAX_BYTES
    for _ in range(MAX_REDIRECTS + 1):
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or parts.username or parts.password:
            check_url(url)  # raises with the reason; the address itself is checked when connecting
        if deadline is not None and time.monotonic() > deadline:
            raise IngestError("Fetching took too long; try fewer pages.")
        try:
            with _unsafe_as_ingest_error(), client.stream("GET", url) as response:
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
                    if sink is not None:
                        sink.write(part)
                    else:
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
    """A client whose every connection goes through the outbound guard; redirects come back to
    ``fetch``, which requests each hop through this same client."""
    timeout = settings.KNOWLEDGE_FETCH_TIMEOUT
    return outbound.client(
        allow_private=settings.KNOWLEDGE_ALLOW_PRIVATE_URLS,
        refuse_redirects=False,
        timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
        headers={
            "User-Agent": USER_AGENT,
            "Accept": "text/html,application/xhtml+xml,text/plain;q=0.9,*/*;q=0.5",
        },
    )


@dataclass
class CrawlResult:
    pages: list[FetchedPage] = field(default_factory=list)
    skipped_by_robots: int = 0


def _robots(start: str, *, client: httpx.Client) -> urllib.robotparser.RobotFileParser:
    parts = urlsplit(start)
    robots = urllib.robotparser.RobotFileParser()
    robots_url = f"{parts.scheme}://{parts.netloc}/robots.txt"
    try:
        page = fetch(robots_url, client=client)
        lines = page.body.decode("utf-8", "replace").splitlines() if page.status == 200 else []
    except (IngestError, TransientIngestError):
        lines = []
    robots.parse(lines)
    return robots


def _sitemap_urls(start: str, robots, *, client: httpx.Client, limit: int) -> list[str]:
    from bs4 import BeautifulSoup

    parts = urlsplit(start)
    candidates = list(robots.site_maps() or []) or [f"{parts.scheme}://{parts.netloc}/sitemap.xml"]
    if start.endswith(".xml"):
        candidates = [start]
    urls: list[str] = []
    for sitemap in candidates[:3]:
        try:
            page = fetch(sitemap, client=client)
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
    on_page: Callable[[int], None] | None = None,
    time_budget: float = 240.0,
) -> CrawlResult:
    """Pages of one site: the sitemap's URLs if it has one, else a breadth-first same-site crawl."""
    check_url(start)
    deadline = time.monotonic() + time_budget
    result = CrawlResult()
    host = urlsplit(start).netloc
    with make_client() as client:
        robots = _robots(start, client=client)
        queue: list[tuple[str, int]] = [(start, 0)]
        from_sitemap = _sitemap_urls(start, robots, client=client, limit=max_pages)
        if from_sitemap:
            queue = [(url, max_depth) for url in from_sitemap]  # depth max: sitemap pages are not expanded
        seen = {url for url, _ in queue}
        while queue and len(result.pages) < max_pages and time.monotonic() < deadline:
            url, depth = queue.pop(0)
            if not robots.can_fetch(USER_AGENT, url):
                result.skipped_by_robots += 1
                continue
            try:
                page = fetch(url, client=client, deadline=deadline)
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
