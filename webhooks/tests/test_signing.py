"""The signature scheme receivers implement (docs/webhooks.md): t=…,v1=… over "t.body"."""

from __future__ import annotations

import hashlib
import hmac

from webhooks import signing

BODY = b'{"id":"evt_1","type":"webhook.test"}'


def test_signature_is_hmac_sha256_of_timestamp_dot_body():
    header = signing.signature_header(secrets=["whsec_a"], timestamp=1700000000, body=BODY)
    expected = hmac.new(b"whsec_a", b"1700000000." + BODY, hashlib.sha256).hexdigest()
    assert header == f"t=1700000000,v1={expected}"
    assert signing.verify(header=header, body=BODY, secret="whsec_a", now=1700000100)


def test_tampered_body_wrong_secret_and_old_timestamp_fail():
    header = signing.signature_header(secrets=["whsec_a"], timestamp=1700000000, body=BODY)
    assert not signing.verify(header=header, body=BODY + b" ", secret="whsec_a", now=1700000000)
    assert not signing.verify(header=header, body=BODY, secret="whsec_b", now=1700000000)
    assert not signing.verify(header=header, body=BODY, secret="whsec_a", now=1700000000 + 301)
    assert not signing.verify(header="v1=abc", body=BODY, secret="whsec_a")


def test_a_rotation_header_verifies_with_either_secret():
    header = signing.signature_header(secrets=["whsec_new", "whsec_old"], timestamp=1700000000, body=BODY)
    assert header.count("v1=") == 2
    for secret in ("whsec_new", "whsec_old"):
        assert signing.verify(header=header, body=BODY, secret=secret, now=1700000000)
