"""The management API's rate limit per API key (API_RATE_LIMIT): a clear 429 with Retry-After, counted
per key, so one busy key does not slow another."""

from __future__ import annotations

import pytest

from accounts.services import api_key_create

pytestmark = pytest.mark.django_db
URL = "/api/v1/organization/"


def test_a_key_over_its_rate_gets_429_and_other_keys_do_not(client, org_a, settings) -> None:
    settings.API_RATE_LIMIT = "2/min"
    busy = api_key_create(organization=org_a, name="busy").key
    calm = api_key_create(organization=org_a, name="calm").key
    statuses = [client.get(URL, HTTP_AUTHORIZATION=f"Bearer {busy}").status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
    refused = client.get(URL, HTTP_AUTHORIZATION=f"Bearer {busy}")
    assert refused.json()["error"]["code"] == "throttled" and 1 <= int(refused["Retry-After"]) <= 60
    assert client.get(URL, HTTP_AUTHORIZATION=f"Bearer {calm}").status_code == 200


def test_the_limit_can_be_switched_off(client, org_a, settings) -> None:
    settings.API_RATE_LIMIT = "off"
    key = api_key_create(organization=org_a, name="ci").key
    assert all(client.get(URL, HTTP_AUTHORIZATION=f"Bearer {key}").status_code == 200 for _ in range(5))
