"""The OpenAPI description and its browsable docs: every route of the API, API-key auth, no CDN."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from django.urls import URLPattern, URLResolver, get_resolver

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
        "description": "An API key from the admin (API keys), sent as `Authorization: Bearer prl_…`.",
    }  # fmt: skip
    create = schema["paths"]["/api/v1/sources/"]["post"]["requestBody"]["content"]
    assert {"application/json", "multipart/form-data"} <= set(create)


def test_docs_page_serves_its_own_assets(client):
    html = client.get("/api/docs/").content.decode()
    script = client.get("/api/docs/?script=").content.decode()  # start-up code as a file (no inline script)
    assert "/api/schema/" in script and "swagger-ui-dist" in html
    assert "cdn." not in html and "unpkg" not in html


# Routes under the API's prefixes that are deliberately not operations of the schema, with the reason.
NOT_OPERATIONS = {
    "/api/v1/exports/download/{token}/": "a signed link handed out as download_url, not an API call",
    "/api/v1/privacy/download/{token}/": "a signed link handed out as download_url, not an API call",
}
API_PREFIXES = ("/api/v1/", "/v1/")
METHODS = ("get", "post", "put", "patch", "delete")


def api_routes(patterns: list, prefix: str = "/") -> Iterator[tuple[str, object]]:
    """(OpenAPI path, view) of every route in ``patterns`` under the API's prefixes."""
    for entry in patterns:
        route = str(entry.pattern)
        if isinstance(entry, URLResolver):
            yield from api_routes(entry.url_patterns, prefix + route)
        elif isinstance(entry, URLPattern) and not route.startswith("^"):  # regex routes: the /v1/ catch-all
            path = prefix + re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", route)
            if path.startswith(API_PREFIXES):
                yield path, entry.callback


def test_every_api_route_and_method_is_in_the_schema(client):
    """A new endpoint fails here until it is described (DRF views by drf-spectacular, the async chat views
    in chatbots/api/openapi.py), so /api/docs/ always lists every route."""
    paths = client.get("/api/schema/", {"format": "json"}).json()["paths"]
    routes = dict(api_routes(get_resolver().url_patterns))
    assert {
        "/api/v1/bots/{public_id}/messages",
        "/v1/chat/completions",
        "/v1/responses",
        "/v1/models",
    } <= set(routes)
    for path, view in routes.items():
        if path in NOT_OPERATIONS:
            continue
        assert path in paths, f"{path} is not in the OpenAPI schema"
        view_class = getattr(view, "view_class", None)
        if view_class is not None:
            for method in METHODS:
                if hasattr(view_class, method):
                    assert method in paths[path], f"{method.upper()} {path} is not in the OpenAPI schema"
        assert all(operation.get("responses") for operation in paths[path].values()), path


def test_chat_endpoints_are_described_with_their_request_and_response_shapes(client):
    schema = client.get("/api/schema/", {"format": "json"}).json()
    completions = schema["paths"]["/v1/chat/completions"]["post"]
    assert completions["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ChatCompletionRequest"
    }
    assert {"application/json", "text/event-stream"} <= set(completions["responses"]["200"]["content"])
    assert completions["security"] == [{"ApiKey": []}]
    request = schema["components"]["schemas"]["ChatCompletionRequest"]
    assert {"model", "messages", "temperature", "max_tokens", "stop"} <= set(request["properties"])
    assert "Bearer prl_" in schema["info"]["description"] and "<API key>" not in schema["info"]["description"]
