"""A URL that Parlor would refuse to fetch is refused in the admin's form and by the API with the reason,
before the source is saved, naming the development setting that allows local addresses."""

from __future__ import annotations

import pytest
from django.urls import reverse

from accounts.services import api_key_create
from accounts.tests.factories import make_organization, owner_of
from knowledge.models import Source

pytestmark = pytest.mark.django_db

INLINE = {"faq_pairs-TOTAL_FORMS": "0", "faq_pairs-INITIAL_FORMS": "0"}


def _form(url: str) -> dict[str, str]:
    return {"title": "Docs", "kind": "url", "url": url, "max_pages": "50", "max_depth": "3",
            "resync_hours": "0", **INLINE}  # fmt: skip


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8000/docs", "http://localhost/docs", "http://10.1.2.3/", "http://[::1]/"]
)
def test_admin_form_says_why_a_local_address_is_refused_before_saving(client, settings, url) -> None:
    settings.KNOWLEDGE_ALLOW_PRIVATE_URLS = False
    client.force_login(owner_of(make_organization()))
    response = client.post(reverse("admin:knowledge_source_add"), _form(url))
    assert response.status_code == 200  # the form again, with the error
    errors = response.context["adminform"].form.errors["url"]
    assert len(errors) == 1
    assert "is a private, local or cloud-internal address" in errors[0]
    assert "KNOWLEDGE_ALLOW_PRIVATE_URLS=true" in errors[0]
    assert not Source.objects.exists()


def test_the_development_setting_lets_a_local_address_through(client, settings, monkeypatch) -> None:
    settings.KNOWLEDGE_ALLOW_PRIVATE_URLS = True
    monkeypatch.setattr("knowledge.tasks.source_ingest_task.delay", lambda pk: None)
    client.force_login(owner_of(make_organization()))
    response = client.post(reverse("admin:knowledge_source_add"), _form("http://127.0.0.1:8000/docs"))
    assert response.status_code == 302
    assert Source.objects.get().url == "http://127.0.0.1:8000/docs"


def test_api_refuses_a_local_address_and_an_invalid_one_with_one_message_each(client, settings) -> None:
    settings.KNOWLEDGE_ALLOW_PRIVATE_URLS = False
    organization = make_organization()
    key = api_key_create(organization=organization, name="test").key
    headers = {"HTTP_AUTHORIZATION": f"Bearer {key}"}

    local = client.post(reverse("api-sources"), {"kind": "url", "url": "http://127.0.0.1/"},
                        content_type="application/json", **headers)  # fmt: skip
    assert local.status_code == 400
    assert "KNOWLEDGE_ALLOW_PRIVATE_URLS" in str(local.json())

    invalid = client.post(reverse("api-sources"), {"kind": "url", "url": "not a url"},
                          content_type="application/json", **headers)  # fmt: skip
    assert invalid.status_code == 400
    assert str(invalid.json()).count("Enter a valid URL.") == 1, invalid.json()
    assert not Source.objects.exists()
