"""The address of the client behind Parlor's own proxies, for per-IP limits.

``X-Forwarded-For`` is written by whoever sent the request, so it is believed only as far as it was added
by a proxy of ours: walking from the right (the hop nearest to us), every address that is one of
``TRUSTED_PROXIES`` is skipped and the first other one is the client. Without trusted proxies the peer's
own address is the client, whatever the header says.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from functools import lru_cache

from django.conf import settings

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@lru_cache(maxsize=8)
def _networks(entries: tuple[str, ...]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(entry.strip(), strict=False) for entry in entries if entry.strip())


def _trusted(address: str, networks: Iterable[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address.strip().strip("[]"))
    except ValueError:
        return False
    return any(ip in network for network in networks)


def client_ip(peer: str, forwarded_for: str | None) -> str:
    """The client's address given the connecting peer and the ``X-Forwarded-For`` header, if any."""
    networks = _networks(tuple(settings.TRUSTED_PROXIES))
    if not networks or not _trusted(peer, networks):
        return peer
    hops = [hop.strip() for hop in (forwarded_for or "").split(",") if hop.strip()]
    for hop in reversed(hops):
        if not _trusted(hop, networks):
            return hop[:64]
    return hops[0][:64] if hops else peer


def request_client_ip(request) -> str:
    return client_ip(request.META.get("REMOTE_ADDR", ""), request.META.get("HTTP_X_FORWARDED_FOR"))


def scope_client_ip(scope: dict) -> str:
    """The same for an ASGI (WebSocket) connection."""
    peer = (scope.get("client") or [""])[0] or ""
    forwarded = None
    for name, value in scope.get("headers", []):
        if name == b"x-forwarded-for":
            forwarded = value.decode("latin-1")
            break
    return client_ip(peer, forwarded)
