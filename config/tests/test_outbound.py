"""The outbound guard itself: which addresses, resolution, connecting to the checked address, redirects."""

from __future__ import annotations

import httpx
import httpx2
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
from knowledge.testing import Site, page, serve


@pytest.mark.parametrize(("host", "what"), REFUSED_HOSTS, ids=REFUSED_HOST_IDS)
def test_every_internal_form_of_an_address_is_refused(host, what):
    with pytest.raises(outbound.OutboundRefused) as refused:
        outbound.check_url(f"http://{host}/")
    assert any(words in str(refused.value) for words in REFUSAL_WORDS), str(refused.value)


@pytest.mark.parametrize(
    "address", ["93.184.215.14", "8.8.8.8", "2606:4700:4700::1111", "64:ff9b::808:808", "::ffff:8.8.8.8"]
)
def test_public_addresses_and_their_nat64_and_mapped_forms_are_allowed(address):
    assert outbound.is_allowed(address)


@pytest.mark.parametrize("address", ["127.0.0.1", "::1", "10.1.2.3", "192.168.0.5", "100.64.0.1", "fd12::1"])
def test_allow_private_lets_loopback_and_private_networks_through(address):
    assert not outbound.is_allowed(address)
    assert outbound.is_allowed(address, allow_private=True)


@pytest.mark.parametrize(
    "address",
    ["169.254.169.254", "fd00:ec2::254", "64:ff9b::a9fe:a9fe", "fe80::1", "224.0.0.1", "0.0.0.0"],  # noqa: S104
)
def test_metadata_link_local_multicast_and_unspecified_stay_refused_with_allow_private(address):
    assert not outbound.is_allowed(address, allow_private=True)


def test_operator_allowed_networks_are_reachable_but_never_the_metadata_address(settings):
    settings.OUTBOUND_ALLOWED_NETWORKS = ["10.20.0.0/16", "169.254.0.0/16"]
    assert outbound.is_allowed("10.20.3.4") and outbound.is_allowed("::ffff:10.20.3.4")
    assert not outbound.is_allowed("10.21.0.1")
    assert not outbound.is_allowed("169.254.169.254")


def test_a_name_is_refused_if_any_of_its_addresses_is_internal(monkeypatch):
    monkeypatch.setattr(outbound, "_lookup", lambda host, port: ["93.184.215.14", "10.0.0.5"])
    with pytest.raises(outbound.OutboundRefused, match=r"intranet\.example \(10\.0\.0\.5\)"):
        outbound.check_url("https://intranet.example/")
    monkeypatch.setattr(outbound, "_lookup", lambda host, port: ["93.184.215.14"])
    outbound.check_url("https://www.example.com/")


@pytest.mark.parametrize(
    "url", ["file:///etc/passwd", "ftp://example.com/", "gopher://127.0.0.1/", "http://user:pw@example.com/"]
)
def test_other_schemes_and_credentials_in_urls_are_refused(url):
    with pytest.raises(outbound.OutboundRefused):
        outbound.check_url(url)


@pytest.fixture
def stand_in_is_public(settings):
    settings.OUTBOUND_ALLOWED_NETWORKS = [f"{PUBLIC_STAND_IN}/32"]


@pytest.mark.usefixtures("stand_in_is_public")
def test_the_client_connects_to_the_checked_address_and_keeps_the_host_name(monkeypatch):
    # A rebinding DNS answers an allowed address first, then an internal one: the connection must use
    # the answer that was checked, so the second answer is never used (nor asked for).
    answers = [[PUBLIC_STAND_IN], ["127.0.0.1"]]
    monkeypatch.setattr(outbound, "_lookup", lambda host, port: answers.pop(0))
    with serve_redirects(Redirector(target="http://127.0.0.1:9")) as server:
        port = server.base.rsplit(":", 1)[1]
        with outbound.client(refuse_redirects=False) as client:
            response = client.get(f"http://shop.example:{port}/page")
    assert response.status_code == 307
    assert server.hosts == [f"shop.example:{port}"]
    assert answers == [["127.0.0.1"]]


@pytest.mark.usefixtures("stand_in_is_public")
def test_the_sync_client_refuses_a_redirect_to_an_internal_address():
    internal = Site({"/secret": page("Internal", "<p>internal only</p>")})
    with serve(internal), serve_redirects(Redirector(target=internal.base)) as outside:
        # Refused as a redirect...
        with outbound.client() as client, pytest.raises(outbound.OutboundRefused, match="redirect"):
            client.get(f"{outside.base}/secret")
        # ...and, when the caller follows it, refused as an internal address.
        with outbound.client(refuse_redirects=False) as client:
            response = client.get(f"{outside.base}/secret")
            with pytest.raises(outbound.OutboundRefused, match="loopback"):
                client.get(response.headers["location"])
    assert outside.hits == ["/secret", "/secret"]
    assert internal.hits == []


@pytest.mark.usefixtures("stand_in_is_public")
async def test_the_async_clients_refuse_redirects_and_internal_addresses():
    internal = Site({"/secret": page("Internal", "<p>internal only</p>")})
    with serve(internal), serve_redirects(Redirector(target=internal.base)) as outside:
        for http in (httpx, httpx2):  # our own clients, and the openai SDK's HTTP library
            async with outbound.async_client(http=http) as client:
                with pytest.raises(outbound.OutboundRefused, match="redirect"):
                    await client.get(f"{outside.base}/secret")
                with pytest.raises(outbound.OutboundRefused, match="loopback"):
                    await client.get(f"{internal.base}/secret")
    assert internal.hits == []


async def test_an_unresolvable_name_is_refused_by_the_async_client():
    async with outbound.async_client(http=httpx2) as client:
        with pytest.raises(outbound.OutboundRefused, match="cannot be resolved"):
            await client.get("http://nonexistent.invalid/")
