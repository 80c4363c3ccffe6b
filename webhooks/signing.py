"""How a delivery is signed, and how a receiver checks it (docs/webhooks.md shows the same in Python and
Node).

``Parlor-Signature: t=<unix seconds>,v1=<hex>[,v1=<hex>]`` where each ``v1`` is
HMAC-SHA256(secret, f"{t}.{body}") with one of the endpoint's signing secrets: the current one, and while a
rotation's grace period lasts the previous one too. A receiver accepts the request when any ``v1`` matches
its secret and ``t`` is recent (replays of an old body fail the time check).
"""

from __future__ import annotations

import hashlib
import hmac
import time

SIGNATURE_HEADER = "Parlor-Signature"
EVENT_ID_HEADER = "Parlor-Event-Id"
EVENT_TYPE_HEADER = "Parlor-Event-Type"
ATTEMPT_HEADER = "Parlor-Delivery-Attempt"
DEFAULT_TOLERANCE_SECONDS = 300


def signature(*, secret: str, timestamp: int, body: bytes) -> str:
    """The hex HMAC-SHA256 of ``"{timestamp}." + body`` under ``secret``."""
    signed = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def signature_header(*, secrets: list[str], timestamp: int, body: bytes) -> str:
    """The ``Parlor-Signature`` value: the time and one ``v1`` per secret."""
    parts = [f"t={timestamp}"]
    parts.extend(f"v1={signature(secret=secret, timestamp=timestamp, body=body)}" for secret in secrets)
    return ",".join(parts)


def verify(
    *,
    header: str,
    body: bytes,
    secret: str,
    tolerance: int = DEFAULT_TOLERANCE_SECONDS,
    now: float | None = None,
) -> bool:
    """True when ``header`` carries a ``v1`` signature of ``body`` by ``secret`` made within ``tolerance``
    seconds of ``now`` (what a receiver does; Parlor's tests check every delivery with it)."""
    timestamp, candidates = None, []
    for item in header.split(","):
        key, _, value = item.strip().partition("=")
        if key == "t" and value.isdigit():
            timestamp = int(value)
        elif key == "v1":
            candidates.append(value)
    if timestamp is None or not candidates:
        return False
    if abs((time.time() if now is None else now) - timestamp) > tolerance:
        return False
    expected = signature(secret=secret, timestamp=timestamp, body=body)
    return any(hmac.compare_digest(expected, candidate) for candidate in candidates)
