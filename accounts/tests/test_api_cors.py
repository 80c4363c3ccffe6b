"""CORS for the API: an organization lists the websites whose own pages may call it with its keys;
preflights are answered for them, cookies are never allowed, and a key used from another site is refused."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from accounts.services import api_key_create

pytestmark = pytest.mark.django_db
APP = "https://app.acme.test"
ELSEWHERE = "https://evil.test"


@pytest.fixture
def acme(org_a):
    org_a.api_allowed_origins = [APP]
    org_a.save(update_fields=["api_allowed_origins"])
    return org_a


def preflight(client, url: str, origin: str):
    return client.options(url, HTTP_ORIGIN=origin, HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST",
                          HTTP_ACCESS_CONTROL_REQUEST_HEADERS="authorization, content-type")  # fmt: skip


@pytest.mark.parametrize("url", ["/api/v1/bots/", "/v1/chat/completions", "/api/v1/organization/"])
def test_preflight_from_a_listed_origin_is_allowed_without_credentials(client, acme, url) -> None:
    response = preflight(client, url, APP)
    assert response.status_code == 200
    assert response["Access-Control-Allow-Origin"] == APP
    assert "authorization" in response["Access-Control-Allow-Headers"]
    assert "POST" in response["Access-Control-Allow-Methods"]
    assert "Access-Control-Allow-Credentials" not in response


def test_preflight_from_an_unlisted_origin_gets_no_cors_headers(client, acme) -> None:
    assert "Access-Control-Allow-Origin" not in preflight(client, "/api/v1/bots/", ELSEWHERE)
    assert "Access-Control-Allow-Origin" not in preflight(client, "/admin/", APP)  # only the API


def test_a_listed_origin_reads_with_its_organizations_key(client, acme) -> None:
    key = api_key_create(organization=acme, name="front-end").key
    response = client.get("/api/v1/organization/", HTTP_ORIGIN=APP, HTTP_AUTHORIZATION=f"Bearer {key}")
    assert response.status_code == 200 and response.json()["id"] == acme.pk
    assert response["Access-Control-Allow-Origin"] == APP


def test_a_key_used_from_a_site_its_organization_does_not_list_is_refused(client, acme, org_b) -> None:
    key = api_key_create(organization=org_b, name="theirs").key
    for origin in (APP, ELSEWHERE):  # APP is listed by another organization, not by the key's
        response = client.get("/api/v1/organization/", HTTP_ORIGIN=origin, HTTP_AUTHORIZATION=f"Bearer {key}")
        assert response.status_code == 403 and response.json()["error"]["code"] == "origin_not_allowed"
        completion = client.post("/v1/chat/completions", {"model": "bot_x", "messages": [{"role": "user", "content": "Hi"}]},
                                 content_type="application/json", HTTP_ORIGIN=origin,
                                 HTTP_AUTHORIZATION=f"Bearer {key}")  # fmt: skip
        assert completion.status_code == 403 and completion.json()["error"]["code"] == "origin_not_allowed"
    same_site = client.get(
        "/api/v1/organization/", HTTP_ORIGIN="http://testserver", HTTP_AUTHORIZATION=f"Bearer {key}"
    )
    assert same_site.status_code == 200  # Parlor's own pages (the API docs) are not another site


def test_allowed_origins_must_be_exact_origins(acme) -> None:
    for bad in (["https://app.acme.test/path"], ["*"], ["HTTPS://APP.ACME.TEST"], "https://a.test", [5]):
        acme.api_allowed_origins = bad
        with pytest.raises(ValidationError):
            acme.full_clean()
    acme.api_allowed_origins = [APP, "http://localhost:3000"]
    acme.full_clean()
