"""Outbound HTTP requests to addresses a customer chose: one guard for every client (SSRF protection).

Parlor fetches web pages for knowledge sources and calls model providers at base URLs that tenants
enter; webhooks and transcription will do the same. A tenant must not make Parlor's servers reach
internal services, so every such request goes through the transports built here:

* **Every connection is checked where it is made.** The transport's network backend resolves the host,
  refuses it unless *every* address is allowed (``address_refusal``), and connects to the checked address
  itself: a DNS answer that changes between check and connect (rebinding) cannot slip through, and a
  redirect hop is a new connection, so it is checked again. TLS still verifies the certificate against
  the host name and sends it as SNI; the Host header is untouched.
* **One rule for addresses**, an allowlist for IPv6 (global unicast 2000::/3 only) and explicit ranges
  for IPv4; addresses that embed an IPv4 address (IPv4-mapped, NAT64 64:ff9b::/96) are judged by it,
  other tunnelling forms (6to4, Teredo, IPv4-compatible, local-use NAT64) are refused outright.
* **Unresolvable names are refused**, never waved through.
* Environment proxies are ignored (a proxy would resolve and connect on our behalf, unchecked).

``allow_private`` lets loopback and private networks through (self-hosted models on a LAN, with
``LLM_ALLOW_PRIVATE_BASE_URLS``); link-local and cloud metadata addresses stay refused even then.
``OUTBOUND_ALLOWED_NETWORKS`` lists networks an operator trusts explicitly (an internal model server);
tests use it to treat one loopback address as public.

This module is plumbing below the apps: it imports none of them. Callers turn ``OutboundRefused`` into
their own errors (a form error, a source's failure reason, a failed model attempt).
"""

from __future__ import annotations

import functools
import ipaddress
import socket
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

import anyio.to_thread
import httpx
from django.conf import settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

GENERIC = "a private, local or cloud-internal address"


class OutboundRefused(Exception):
    """Parlor does not send this request; the message is safe to show to the customer who asked."""


class UnresolvableHost(OutboundRefused):
    """The name has no address (now): refused, though a later attempt may resolve it."""


# --- which addresses ------------------------------------------------------------------------------
# Cloud metadata and host services, refused even with allow_private or an operator's allowed network.
_METADATA = {
    ipaddress.ip_address(a): "a cloud metadata address"
    for a in ("169.254.169.254", "fd00:ec2::254", "100.100.100.200", "168.63.129.16", "192.0.0.192")
}

# (network, why, private): ``private`` ranges are let through by ``allow_private``.
_IPV4_RANGES = [
    (ipaddress.ip_network(net), why, private)
    for net, why, private in (
        ("0.0.0.0/8", "an unspecified (this-network) address", False),
        ("10.0.0.0/8", "a private network address", True),
        ("100.64.0.0/10", "a shared (carrier-grade NAT) address", True),
        ("127.0.0.0/8", "a loopback address", True),
        ("169.254.0.0/16", "a link-local address", False),
        ("172.16.0.0/12", "a private network address", True),
        ("192.0.0.0/24", "an IETF protocol address", False),
        ("192.0.2.0/24", "a documentation address", False),
        ("192.88.99.0/24", "a 6to4 relay address", False),
        ("192.168.0.0/16", "a private network address", True),
        ("198.18.0.0/15", "a benchmarking address", False),
        ("198.51.100.0/24", "a documentation address", False),
        ("203.0.113.0/24", "a documentation address", False),
        ("224.0.0.0/4", "a multicast address", False),
        ("240.0.0.0/4", "a reserved or broadcast address", False),
    )
]
_IPV6_RANGES = [
    (ipaddress.ip_network(net), why, private)
    for net, why, private in (
        ("::/128", "an unspecified address", False),
        ("::1/128", "a loopback address", True),
        ("::/96", "an IPv4-compatible address (deprecated)", False),
        ("64:ff9b:1::/48", "a local-use NAT64 address", False),
        ("100::/64", "a discard-only address", False),
        ("2001::/23", "an IETF protocol address (Teredo, ORCHID and others)", False),
        ("2001:db8::/32", "a documentation address", False),
        ("2002::/16", "a 6to4 address", False),
        ("3fff::/20", "a documentation address", False),
        ("fc00::/7", "a private network (unique local) address", True),
        ("fe80::/10", "a link-local address", False),
        ("fec0::/10", "a site-local address (deprecated)", False),
        ("ff00::/8", "a multicast address", False),
    )
]
_GLOBAL_UNICAST = ipaddress.ip_network("2000::/3")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


@functools.cache
def _operator_networks(entries: tuple[str, ...]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(entry.strip(), strict=False) for entry in entries if entry.strip())


def _parse(address: str | IPAddress) -> IPAddress:
    if isinstance(address, str):
        address = ipaddress.ip_address(address.split("%", 1)[0])  # a zone id ("fe80::1%eth0") is dropped
    return address


def address_refusal(address: str | IPAddress, *, allow_private: bool = False) -> str | None:
    """Why Parlor does not connect to ``address`` (e.g. "a loopback address"), or None if it may."""
    ip = _parse(address)
    if ip in _METADATA:
        return _METADATA[ip]
    if any(ip in network for network in _operator_networks(tuple(settings.OUTBOUND_ALLOWED_NETWORKS))):
        return None
    embedded: ipaddress.IPv4Address | None = None
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            embedded = ip.ipv4_mapped
        elif ip in _NAT64:  # a DNS64 answer: the translator connects to the IPv4 address in the low 32 bits
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if embedded is not None:
        refusal = address_refusal(embedded, allow_private=allow_private)
        return f"{refusal} ({ip} stands for {embedded})" if refusal else None
    ranges = _IPV4_RANGES if isinstance(ip, ipaddress.IPv4Address) else _IPV6_RANGES
    for network, why, private in ranges:
        if ip in network:
            return None if private and allow_private else why
    if isinstance(ip, ipaddress.IPv6Address) and ip not in _GLOBAL_UNICAST:
        return "a reserved address"
    return None


def is_allowed(address: str | IPAddress, *, allow_private: bool = False) -> bool:
    return address_refusal(address, allow_private=allow_private) is None


# --- resolving ------------------------------------------------------------------------------------
def _lookup(host: str, port: int) -> list[str]:
    """The DNS step alone (tests replace it to give a name an address without touching /etc/hosts)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def resolve(host: str, port: int, *, allow_private: bool = False) -> list[str]:
    """Every address of ``host``, each one allowed; else ``OutboundRefused`` (unresolvable included)."""
    host = host.strip("[]")
    try:
        addresses = _lookup(host, port)
    except (OSError, UnicodeError):
        addresses = []
    if not addresses:
        raise UnresolvableHost(f"The address {host!r} cannot be resolved.")
    for address in addresses:
        refusal = address_refusal(address, allow_private=allow_private)
        if refusal:
            shown = host if _same_address(host, address) else f"{host} ({address})"
            raise OutboundRefused(f"{shown} is {GENERIC}: {refusal}.")
    return addresses


def _is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def _same_address(host: str, address: str) -> bool:
    try:
        return ipaddress.ip_address(host) == _parse(address)
    except ValueError:
        return False


def check_url(url: str, *, allow_private: bool = False) -> None:
    """Raise ``OutboundRefused`` unless ``url`` is http(s), without credentials, to an allowed host.

    An early, friendly answer (a form error, a source that fails at once); the transport checks again
    at every connection, which is what actually protects."""
    try:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise OutboundRefused("This is not a valid web address.") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise OutboundRefused("Only http:// and https:// addresses can be used.")
    if parts.username or parts.password:
        raise OutboundRefused("Addresses with a user name or password are not allowed.")
    resolve(parts.hostname, port, allow_private=allow_private)


# --- connecting -----------------------------------------------------------------------------------
class _GuardedBackend:
    """Wraps an httpcore network backend: connect only to resolved, checked addresses."""

    def __init__(self, backend: Any, *, allow_private: bool) -> None:
        self._backend = backend
        self._allow_private = allow_private

    def connect_tcp(self, host: str, port: int, **options: Any) -> Any:
        addresses = resolve(host, port, allow_private=self._allow_private)
        return _first_connection(
            addresses, lambda address: self._backend.connect_tcp(address, port, **options)
        )

    def connect_unix_socket(self, path: str, **options: Any) -> Any:
        raise OutboundRefused("Unix sockets are not reachable from here.")

    def sleep(self, seconds: float) -> None:
        self._backend.sleep(seconds)


class _AsyncGuardedBackend:
    """The async twin of ``_GuardedBackend`` (resolution runs in a worker thread, as asyncio's does)."""

    def __init__(self, backend: Any, *, allow_private: bool) -> None:
        self._backend = backend
        self._allow_private = allow_private

    async def connect_tcp(self, host: str, port: int, **options: Any) -> Any:
        check = functools.partial(resolve, host, port, allow_private=self._allow_private)
        addresses = check() if _is_ip_literal(host) else await anyio.to_thread.run_sync(check)
        last: Exception | None = None
        for address in addresses:  # in resolver order, like a browser without happy eyeballs
            try:
                return await self._backend.connect_tcp(address, port, **options)
            except Exception as exc:  # the backend's own ConnectError/ConnectTimeout
                last = exc
        assert last is not None
        raise last

    async def connect_unix_socket(self, path: str, **options: Any) -> Any:
        raise OutboundRefused("Unix sockets are not reachable from here.")

    async def sleep(self, seconds: float) -> None:
        await self._backend.sleep(seconds)


def _first_connection(addresses: Iterable[str], connect: Any) -> Any:
    last: Exception | None = None
    for address in addresses:
        try:
            return connect(address)
        except Exception as exc:  # the backend's own ConnectError/ConnectTimeout
            last = exc
    assert last is not None
    raise last


def _guard(
    transport: Any, backend: type[_GuardedBackend] | type[_AsyncGuardedBackend], allow_private: bool
) -> Any:
    # httpx builds its connection pool without a way to pass a network backend; the pool reads this
    # attribute for every new connection (stable across httpcore 1.x and the SDK's httpcore2).
    pool = transport._pool
    pool._network_backend = backend(pool._network_backend, allow_private=allow_private)
    return transport


def transport(*, allow_private: bool = False, http: Any = httpx, **options: Any) -> httpx.HTTPTransport:
    """A sync transport of ``http`` (httpx, or the openai SDK's httpx2) that connects only to allowed
    addresses; ``options`` go to its ``HTTPTransport`` (limits, retries; never a proxy)."""
    return _guard(http.HTTPTransport(**options), _GuardedBackend, allow_private)


def async_transport(
    *, allow_private: bool = False, http: Any = httpx, **options: Any
) -> httpx.AsyncHTTPTransport:
    """The async twin of ``transport``."""
    return _guard(http.AsyncHTTPTransport(**options), _AsyncGuardedBackend, allow_private)


def _redirect_refusal(response: Any) -> OutboundRefused | None:
    if not response.is_redirect:
        return None
    location = response.headers.get("location", "")
    return OutboundRefused(
        f"{response.request.url.host} answered with a redirect (HTTP {response.status_code}) to "
        f"{location[:200]!r}; redirects are not followed: enter the final address instead."
    )


def _refuse_redirect(response: Any) -> None:
    if refusal := _redirect_refusal(response):
        raise refusal


async def _refuse_redirect_async(response: Any) -> None:
    if refusal := _redirect_refusal(response):
        raise refusal


def client(
    *,
    allow_private: bool = False,
    refuse_redirects: bool = True,
    limits: Any = None,
    http: Any = httpx,
    **options: Any,
) -> httpx.Client:
    """A sync client whose every connection is guarded. A redirect raises ``OutboundRefused`` unless
    ``refuse_redirects=False``: then it is returned, and the caller may request its target (again
    through this client, so checked again). ``options`` go to the ``Client`` (timeout, headers)."""
    hooks = {"response": [_refuse_redirect]} if refuse_redirects else {}
    guarded = transport(allow_private=allow_private, http=http, **({"limits": limits} if limits else {}))
    return http.Client(
        transport=guarded, trust_env=False, follow_redirects=False, event_hooks=hooks, **options
    )


def async_client(
    *,
    allow_private: bool = False,
    refuse_redirects: bool = True,
    limits: Any = None,
    http: Any = httpx,
    **options: Any,
) -> httpx.AsyncClient:
    """The async twin of ``client``."""
    hooks = {"response": [_refuse_redirect_async]} if refuse_redirects else {}
    guarded = async_transport(
        allow_private=allow_private, http=http, **({"limits": limits} if limits else {})
    )
    return http.AsyncClient(
        transport=guarded, trust_env=False, follow_redirects=False, event_hooks=hooks, **options
    )
