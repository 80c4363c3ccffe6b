"""CORS in a real browser: a page of a website its organization lists calls the live API with a key; a page
of any other website is stopped by Chromium itself (no CORS headers for it)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from accounts.services import api_key_create
from accounts.tests.factories import make_organization

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
BLANK = "<!doctype html><html><head><title>Front-end</title></head><body></body></html>"


def call_api(page: Any, url: str, key: str) -> list[Any]:
    """fetch() from the page: [status, organization name], or ["blocked", reason] when the browser refuses."""
    return page.evaluate(
        """async ([url, key]) => {
             try {
               const response = await fetch(url, {headers: {Authorization: `Bearer ${key}`}});
               return [response.status, (await response.json()).name];
             } catch (error) { return ["blocked", String(error)]; }
           }""",
        [url, key],
    )


def test_listed_origin_calls_the_api_from_the_browser_and_others_are_blocked(
    live_parlor: Any, allowed_site: Any, other_site: Any, new_page: Callable[..., Any]
) -> None:
    organization = make_organization(name="Acme Outdoor")
    organization.api_allowed_origins = [allowed_site.origin]
    organization.save(update_fields=["api_allowed_origins"])
    key = api_key_create(organization=organization, name="front-end", read_only=True).key
    url = f"{live_parlor.url}/api/v1/organization/"

    page = new_page()
    page.goto(allowed_site.page("/app", BLANK))
    assert call_api(page, url, key) == [200, "Acme Outdoor"]

    elsewhere = new_page()
    elsewhere.goto(other_site.page("/app", BLANK))
    status, reason = call_api(elsewhere, url, key)
    assert status == "blocked" and "Failed to fetch" in reason
