"""Bots API: tenant and key scoping, write-only provider keys, and no key in any response or log line."""

from __future__ import annotations

import logging

import pytest
from django.urls import reverse

from accounts.models import Role
from accounts.services import api_key_create
from accounts.tests.factories import add_member, make_organization, owner_of
from chatbots.models import Bot
from chatbots.services import api_key_set_bots, bot_create
from chatbots.tests.factories import scripted

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_llm_settings")]

PROVIDER_KEY = "sk-live-NEVER-SHOWN-8d7c6b5a4f3e2d1c0b9a"
FALLBACK_KEY = "gsk_fallback-NEVER-SHOWN-0a9b8c7d6e5f"


@pytest.fixture
def org():
    return make_organization(name="Acme")


def bearer(organization, *, bots=None, **options) -> dict[str, str]:
    issued = api_key_create(organization=organization, name="test", **options)
    api_key_set_bots(api_key=issued.api_key, bots=bots)
    return {"HTTP_AUTHORIZATION": f"Bearer {issued.key}"}


def test_api_key_creates_and_changes_a_bot_with_write_only_keys(client, org):
    auth = bearer(org)
    response = client.post(
        reverse("api-bots"),
        {"name": "Support", "provider": "openai", "model": "gpt-4o-mini", "api_key": PROVIDER_KEY,
         "suggested_questions": ["Hours?"], "allowed_origins": ["https://shop.example/"]},
        content_type="application/json", **auth,
    )  # fmt: skip
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["has_api_key"] is True and "api_key" not in body
    assert body["allowed_origins"] == ["https://shop.example"] and body["public_id"] in body["embed_snippet"]
    bot = Bot.objects.get(public_id=body["public_id"], organization=org)
    assert bot.get_api_key() == PROVIDER_KEY

    url = reverse("api-bot", args=[bot.public_id])
    changed = client.patch(url, {"temperature": 0.5}, content_type="application/json", **auth).json()
    assert changed["temperature"] == 0.5 and changed["has_api_key"] is True  # key kept
    cleared = client.patch(url, {"api_key": ""}, content_type="application/json", **auth).json()
    assert cleared["has_api_key"] is False
    assert client.delete(url, **auth).status_code == 204
    assert not Bot.objects.filter(pk=bot.pk).exists()


def test_invalid_settings_are_a_400_with_field_errors(client, org):
    response = client.post(
        reverse("api-bots"),
        {"name": "x", "provider": "azure"},
        content_type="application/json",
        **bearer(org),
    )
    assert response.status_code == 400 and "base_url" in response.json()


def test_other_organizations_and_restricted_keys_see_nothing(client, org):
    ours = bot_create(organization=org, name="Ours")
    other = bot_create(organization=make_organization(name="Globex"), name="Theirs")
    auth = bearer(org)
    listed = client.get(reverse("api-bots"), **auth).json()["results"]
    assert [b["public_id"] for b in listed] == [ours.public_id]
    assert client.get(reverse("api-bot", args=[other.public_id]), **auth).status_code == 404
    before = Bot.objects.get(pk=other.pk).updated_at
    response = client.patch(
        reverse("api-bot", args=[other.public_id]),
        {"name": "hijacked"},
        content_type="application/json",
        **auth,
    )
    assert response.status_code == 404
    assert Bot.objects.get(pk=other.pk).name == "Theirs" and Bot.objects.get(pk=other.pk).updated_at == before

    second = bot_create(organization=org, name="Second")
    limited = bearer(org, bots=[second])
    assert [b["name"] for b in client.get(reverse("api-bots"), **limited).json()["results"]] == ["Second"]
    assert client.get(reverse("api-bot", args=[ours.public_id]), **limited).status_code == 404
    assert (
        client.post(
            reverse("api-bots"), {"name": "n"}, content_type="application/json", **limited
        ).status_code
        == 403
    )


def test_read_only_keys_and_members_cannot_write(client, org):
    bot = bot_create(organization=org, name="B")
    url = reverse("api-bot", args=[bot.public_id])
    read_only = bearer(org, read_only=True)
    assert client.get(url, **read_only).status_code == 200
    assert client.patch(url, {"name": "x"}, content_type="application/json", **read_only).status_code == 403
    client.force_login(add_member(organization=org, role=Role.MEMBER))
    assert client.get(url).status_code == 200
    assert client.patch(url, {"name": "x"}, content_type="application/json").status_code == 403
    assert client.delete(url).status_code == 403
    assert Bot.objects.get(pk=bot.pk).name == "B"


def test_provider_keys_appear_in_no_admin_page_api_response_or_log_line(client, org, fake_llm, caplog):
    """The keys are echoed back by the fake provider when rejected, like some vendors do."""
    caplog.set_level(logging.DEBUG)
    bot = bot_create(
        organization=org, name="Leaky?", provider="custom", base_url=fake_llm.base_url, model=scripted(),
        fallback_model=scripted(), api_key=PROVIDER_KEY, fallback_api_key=FALLBACK_KEY,
    )  # fmt: skip
    secrets = [PROVIDER_KEY, FALLBACK_KEY, bot.api_key_encrypted, bot.fallback_api_key_encrypted]
    bodies: dict[str, str] = {}

    auth = bearer(org)
    for name, response in {
        "api list": client.get(reverse("api-bots"), **auth),
        "api detail": client.get(reverse("api-bot", args=[bot.public_id]), **auth),
        "api patch": client.patch(
            reverse("api-bot", args=[bot.public_id]),
            {"name": "Leaky"},
            content_type="application/json",
            **auth,
        ),
        "api test connection": client.post(reverse("api-bot-test-connection", args=[bot.public_id]), **auth),
        "widget config": client.get(f"/widget/{bot.public_id}/config.json"),
        "chat page": client.get(f"/chat/{bot.public_id}/"),
    }.items():
        assert response.status_code in (200, 201), (name, response.status_code)
        bodies[name] = response.content.decode()
    reports = client.post(reverse("api-bot-test-connection", args=[bot.public_id]), **auth).json()
    assert [r["ok"] for r in reports] == [False, False] and "HTTP 401" in reports[0]["message"]

    client.force_login(owner_of(org))
    for name, url in {
        "changelist": reverse("admin:chatbots_bot_changelist"),
        "change": reverse("admin:chatbots_bot_change", args=[bot.pk]),
        "history": reverse("admin:chatbots_bot_history", args=[bot.pk]),
        "test connection": reverse("admin:chatbots_bot_test_connection_detail", args=[bot.pk]),
    }.items():
        response = client.get(url, follow=True)
        assert response.status_code == 200, name
        bodies[f"admin {name}"] = response.content.decode()
    assert "Incorrect API key provided" in bodies["admin test connection"]

    for name, body in bodies.items():
        for secret in secrets:
            assert secret not in body, f"a provider key leaked into the {name} response"
    for secret in secrets:
        assert secret not in caplog.text, "a provider key leaked into the logs"
    assert fake_llm.requests, "the provider was really called"
