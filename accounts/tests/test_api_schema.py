"""The OpenAPI description and its browsable docs: every DRF route, API-key auth, no CDN."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


def test_schema_describes_the_api_with_bearer_keys(client):
    response = client.get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    schema = response.json()
    paths = set(schema["paths"])
    for expected in (
        "/api/v1/bots/", "/api/v1/bots/{public_id}/", "/api/v1/sources/", "/api/v1/sources/{source_id}/",
        "/api/v1/sources/{source_id}/resync/", "/api/v1/conversations/{conversation_id}/messages",
        "/api/v1/messages/{message_id}/feedback", "/api/v1/api-keys/",
    ):  # fmt: skip
        assert expected in paths, expected
    assert schema["components"]["securitySchemes"]["ApiKey"] == {
        "type": "http", "scheme": "bearer",
        "description": "An API key from the admin (API keys): 'Authorization: Bearer prl_…'.",
    }  # fmt: skip
    create = schema["paths"]["/api/v1/sources/"]["post"]["requestBody"]["content"]
    assert {"application/json", "multipart/form-data"} <= set(create)


def test_docs_page_serves_its_own_assets(client):
    html = client.get("/api/docs/").content.decode()
    script = client.get("/api/docs/?script=").content.decode()  # start-up code as a file (no inline script)
    assert "/api/schema/" in script and "swagger-ui-dist" in html
    assert "cdn." not in html and "unpkg" not in html
