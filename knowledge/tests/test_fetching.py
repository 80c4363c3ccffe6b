from __future__ import annotations

import pytest

from config import outbound
from config.testing import (
    PUBLIC_STAND_IN,
    REFUSAL_WORDS,
    REFUSED_HOST_IDS,
    REFUSED_HOSTS,
    Redirector,
    serve_redirects,
)
from knowledge.chunking import passage_sentences
from knowledge.exceptions import UnsafeURLError
from knowledge.fetching import check_url, crawl, fetch, make_client
from knowledge.models import Chunk, SourceKind
from knowledge.services import source_ingest
from knowledge.testing import Site, page, serve
from knowledge.tests.factories import make_organization, make_source


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/",
        "http://localhost:8000/admin/",
        "http://[::1]/",
        "http://10.1.2.3/",
        "http://192.168.0.1/",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::ffff:127.0.0.1]/",
        "http://100.64.0.1/",
        "http://0.0.0.0/",
        "file:///etc/passwd",
        "ftp://example.com/",
        "http://user:pw@example.com/",
    ],
)
def test_private_loopback_link_local_and_metadata_addresses_are_refused_by_default(url):
    with pytest.raises(UnsafeURLError):
        check_url(url)


@pytest.mark.parametrize(("host", "what"), REFUSED_HOSTS, ids=REFUSED_HOST_IDS)
def test_the_fetcher_refuses_every_internal_address_before_connecting(host, what, monkeypatch):
    connected: list[str] = []
    monkeypatch.setattr(outbound, "_first_connection", lambda addresses, connect: connected.extend(addresses))
    with make_client() as client, pytest.raises(UnsafeURLError) as refused:
        fetch(f"http://{host}/latest/meta-data/", client=client)
    assert any(words in refused.value.reason for words in REFUSAL_WORDS), refused.value.reason
    assert connected == []


@pytest.mark.parametrize(("host", "what"), REFUSED_HOSTS, ids=REFUSED_HOST_IDS)
def test_a_website_crawl_refuses_every_internal_address(host, what):
    with pytest.raises(UnsafeURLError):
        crawl(f"http://{host}/", max_pages=2, max_depth=1)


def test_a_hostname_resolving_to_a_private_address_is_refused(monkeypatch):
    monkeypatch.setattr(outbound, "_lookup", lambda host, port: ["93.184.216.34", "10.0.0.5"])
    with pytest.raises(UnsafeURLError):
        check_url("http://intranet.example.com/")
    monkeypatch.setattr(outbound, "_lookup", lambda host, port: ["93.184.216.34"])
    check_url("http://www.example.com/")


@pytest.fixture
def stand_in_is_public(settings):
    settings.OUTBOUND_ALLOWED_NETWORKS = [f"{PUBLIC_STAND_IN}/32"]


@pytest.mark.usefixtures("stand_in_is_public")
@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirect_to_an_internal_address_is_refused(status):
    internal = Site({"/latest/meta-data/": page("Internal", "<p>internal only</p>")})
    with (
        serve(internal),
        serve_redirects(Redirector(target=internal.base, status=status)) as outside,
        make_client() as client,
        pytest.raises(UnsafeURLError, match="loopback"),
    ):
        fetch(f"{outside.base}/latest/meta-data/", client=client)
    assert outside.hits == ["/latest/meta-data/"]  # the allowed host was asked...
    assert internal.hits == []  # ...its redirect target never


@pytest.mark.usefixtures("stand_in_is_public")
def test_a_crawl_skips_a_redirect_to_an_internal_address():
    internal = Site({"/": page("Internal", "<p>internal only</p>")})
    with serve(internal), serve_redirects(Redirector(target=internal.base)) as outside:
        result = crawl(f"{outside.base}/", max_pages=2, max_depth=1)
    assert "/" in outside.hits
    assert result.pages == [] and internal.hits == []


def test_redirect_to_the_metadata_address_is_refused(settings):
    settings.KNOWLEDGE_ALLOW_PRIVATE_URLS = True  # the local test site is reachable; metadata never
    site = Site({}, redirects={"/go": "http://169.254.169.254/latest/meta-data/"})
    with serve(site), make_client() as client, pytest.raises(UnsafeURLError, match="metadata"):
        fetch(f"{site.base}/go", client=client)


@pytest.mark.django_db
def test_url_source_on_loopback_fails_with_a_readable_reason():
    site = Site({"/": page("Home", "<p>Hello</p>")})
    with serve(site):
        source = make_source(organization=make_organization(), kind=SourceKind.URL, url=f"{site.base}/")
        source = source_ingest(source_id=source.pk)
    assert source.status == "failed"
    assert "private, local or cloud-internal" in source.status_reason
    assert site.hits == []


def _site() -> Site:
    long_text = "<p>" + "Our boots are hand-made in Porto from full-grain leather. " * 3 + "</p>"
    return Site(
        {
            "/robots.txt": (200, "text/plain", b"User-agent: *\nDisallow: /private\n"),
            "/": page(
                "Home",
                f'<h1>Welcome</h1>{long_text}<a href="/returns">Returns</a> <a href="/private/x">x</a>',
            ),
            "/returns": page(
                "Returns", '<h1>Returns</h1><p>Return boots within 30 days.</p><a href="/deep">d</a>'
            ),
            "/deep": page("Deep", '<p>Deep page about laces.</p><a href="/deeper">more</a>'),
            "/deeper": page("Deeper", "<p>Too deep.</p>"),
            "/private/x": page("Private", "<p>Secret staff notes.</p>"),
        }
    )


def test_crawl_respects_robots_txt_and_depth(settings):
    settings.KNOWLEDGE_ALLOW_PRIVATE_URLS = True
    with serve(_site()) as site:
        result = crawl(f"{site.base}/", max_pages=10, max_depth=2)
    urls = [p.url.removeprefix(site.base) for p in result.pages]
    assert urls == ["/", "/returns", "/deep"]
    assert "/private/x" not in site.hits
    assert result.skipped_by_robots == 1


def test_crawl_stops_at_the_page_limit(settings):
    settings.KNOWLEDGE_ALLOW_PRIVATE_URLS = True
    with serve(_site()) as site:
        result = crawl(f"{site.base}/", max_pages=2, max_depth=5)
    assert len(result.pages) == 2


@pytest.mark.django_db
def test_website_resync_does_not_re_embed_unchanged_pages(settings, monkeypatch):
    settings.KNOWLEDGE_ALLOW_PRIVATE_URLS = True
    from knowledge import services

    embedded: list[str] = []
    real = services.active_embedder()

    class Counting:
        name = real.name

        def embed_passages(self, texts):
            embedded.extend(texts)
            return real.embed_passages(texts)

        def embed_query(self, text):
            return real.embed_query(text)

    monkeypatch.setattr(services, "active_embedder", lambda: Counting())
    site_data = _site()
    with serve(site_data) as site:
        source = make_source(
            organization=make_organization(),
            kind=SourceKind.WEBSITE,
            url=f"{site.base}/",
            max_pages=10,
            max_depth=1,
        )
        source = source_ingest(source_id=source.pk)
        assert source.status == "ready", source.status_reason
        assert source.page_count == 2
        first = len(embedded)
        stored = Chunk.objects.filter(source=source).values_list("content", flat=True)
        assert first == sum(1 + len(passage_sentences(content)) for content in stored)  # chunks + sentences
        site.pages["/returns"] = page("Returns", "<h1>Returns</h1><p>Return boots within 60 days.</p>")
        source = source_ingest(source_id=source.pk)
    assert len(embedded) - first == 1  # only the changed page (one sentence)
    contents = list(Chunk.objects.filter(source=source).values_list("content", flat=True))
    assert any("60 days" in c for c in contents) and not any("30 days" in c for c in contents)
    assert all(
        url.startswith(site.base) for url in Chunk.objects.filter(source=source).values_list("url", flat=True)
    )
