"""Bot services and admin: defaults, write-only encrypted keys, rotation, validation, test connection."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.urls import reverse

from accounts.exceptions import ApplicationError
from accounts.models import Role
from accounts.tests.factories import add_member, make_organization, owner_of
from chatbots import crypto
from chatbots.llm import endpoints_for
from chatbots.models import Bot
from chatbots.services import bot_create, bot_test_connection, bot_update
from chatbots.tests.factories import SERVER_KEY, UNUSABLE_ORIGINS, admin_form_data, scripted

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_llm_settings")]

PROVIDER_KEY = "sk-live-TOPSECRET-1f2e3d4c5b6a79881726"


@pytest.fixture
def org():
    return make_organization(name="Acme")


@pytest.fixture
def owner(org, client):
    user = owner_of(org)
    client.force_login(user)
    return user


def stored_columns(bot: Bot) -> str:
    return " ".join(
        Bot.objects.filter(pk=bot.pk).values_list("api_key_encrypted", "fallback_api_key_encrypted")[0]
    )


def test_new_bot_works_at_once_with_sensible_defaults(org):
    bot = bot_create(organization=org, name="Helpdesk")
    assert bot.public_id.startswith("bot_") and len(bot.public_id) > 20
    assert bot.status == "active" and bot.provider == "default" and bot.widget_title == "Helpdesk"
    assert bot.history_turns > 0 and bot.retrieval_top_k > 0 and bot.fallback_reply
    assert endpoints_for(bot) == []  # no key anywhere: it answers offline


def test_provider_key_is_encrypted_at_rest_and_kept_unless_replaced(org):
    bot = bot_create(organization=org, name="B", provider="openai", api_key=PROVIDER_KEY)
    assert PROVIDER_KEY not in stored_columns(bot)
    bot = Bot.objects.get(pk=bot.pk)
    assert bot.get_api_key() == PROVIDER_KEY
    bot_update(bot=bot, data={"name": "Renamed"})  # no key given: kept
    assert Bot.objects.get(pk=bot.pk).get_api_key() == PROVIDER_KEY
    bot_update(bot=bot, data={}, api_key="")  # empty: removed
    assert not Bot.objects.get(pk=bot.pk).has_api_key


def test_encryption_keys_rotate(org, settings):
    settings.FIELD_ENCRYPTION_KEYS = ["old-passphrase-0123456789abcdef"]
    bot = bot_create(organization=org, name="B", provider="openai", api_key=PROVIDER_KEY)
    settings.FIELD_ENCRYPTION_KEYS = ["new-passphrase-fedcba9876543210", "old-passphrase-0123456789abcdef"]
    assert Bot.objects.get(pk=bot.pk).get_api_key() == PROVIDER_KEY  # old key still decrypts
    call_command("rotate_encryption_keys")
    settings.FIELD_ENCRYPTION_KEYS = ["new-passphrase-fedcba9876543210"]
    assert Bot.objects.get(pk=bot.pk).get_api_key() == PROVIDER_KEY
    settings.FIELD_ENCRYPTION_KEYS = ["unrelated-passphrase-000000000000"]
    with pytest.raises(crypto.DecryptionError):
        Bot.objects.get(pk=bot.pk).get_api_key()


def test_fernet_keys_and_secret_key_derivation(settings):
    from cryptography.fernet import Fernet

    settings.FIELD_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    assert crypto.decrypt(crypto.encrypt("x")) == "x"
    settings.FIELD_ENCRYPTION_KEYS = []
    token = crypto.encrypt("y")
    assert crypto.decrypt(token) == "y"
    settings.SECRET_KEY = "another-secret-key-" * 4
    with pytest.raises(crypto.DecryptionError):
        crypto.decrypt(token)


def test_bot_settings_are_validated(org, settings):
    with pytest.raises(ValidationError, match="needs the endpoint URL"):
        bot_create(organization=org, name="B", provider="azure")
    with pytest.raises(ValidationError, match="not an origin"):
        bot_create(organization=org, name="B", allowed_origins=["example.com/path"])
    bot = bot_create(
        organization=org, name="B", allowed_origins=["https://WWW.Example.com/", "https://www.example.com"]
    )
    assert bot.allowed_origins == ["https://www.example.com"]
    with pytest.raises(ApplicationError):
        bot_update(bot=bot, data={"api_key_encrypted": "x"})
    settings.LLM_ALLOW_PRIVATE_BASE_URLS = False
    with pytest.raises(ValidationError, match="private, local or cloud-internal address: a loopback"):
        bot_update(bot=bot, data={"provider": "custom", "base_url": "http://127.0.0.1:6379/v1", "model": "m"})
    bot_update(bot=bot, data={"provider": "custom", "base_url": "https://93.184.215.14/v1", "model": "m"})


def test_test_connection_reports_the_model_reply(org, fake_llm):
    bot = bot_create(
        organization=org,
        name="B",
        provider="custom",
        base_url=fake_llm.base_url,
        model=scripted(reply="OK"),
        fallback_model=scripted(status=500),
        api_key=SERVER_KEY,
    )
    primary, fallback = bot_test_connection(bot=bot)
    assert primary.ok and "The model replied: 'OK'" in primary.message and primary.latency_ms is not None
    assert not fallback.ok and "HTTP 500" in fallback.message
    (offline,) = bot_test_connection(bot=bot_create(organization=org, name="Offline"))
    assert offline.ok and "answers offline" in offline.message


# --- admin --------------------------------------------------------------------------------------------


def test_owner_adds_a_bot_in_the_admin_and_the_key_is_never_shown(client, owner, org):
    response = client.post(
        reverse("admin:chatbots_bot_add"),
        admin_form_data(provider="openai", model="gpt-4o-mini", api_key=PROVIDER_KEY),
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    bot = Bot.objects.get(organization=org, name="Support")
    assert bot.get_api_key() == PROVIDER_KEY and bot.suggested_questions == ["Opening hours?", "Returns?"]
    change_url = reverse("admin:chatbots_bot_change", args=[bot.pk])
    page = client.get(change_url).content.decode()
    assert "Set (hidden)" in page and bot.public_id in page and "widget.js" in page  # embed snippet
    assert PROVIDER_KEY not in page and bot.api_key_encrypted not in page
    for url in (
        reverse("admin:chatbots_bot_changelist"),
        reverse("admin:chatbots_bot_history", args=[bot.pk]),
    ):
        assert PROVIDER_KEY not in client.get(url).content.decode()

    # Saving the form again with the key field empty keeps the key; the switch removes it.
    assert client.post(change_url, admin_form_data(provider="openai")).status_code == 302
    assert Bot.objects.get(pk=bot.pk).get_api_key() == PROVIDER_KEY
    assert client.post(change_url, admin_form_data(provider="openai", clear_api_key="on")).status_code == 302
    assert not Bot.objects.get(pk=bot.pk).has_api_key


def test_admin_form_shows_service_validation_errors(client, owner):
    response = client.post(reverse("admin:chatbots_bot_add"), admin_form_data(provider="azure"))
    assert response.status_code == 200 and "needs the endpoint URL" in response.content.decode()
    assert not Bot.objects.exists()


def test_test_connection_action_reports_without_leaking_the_key(client, owner, org, fake_llm):
    wrong = "sk-wrong-ABCDEF0123456789abcdef"  # the fake server echoes a rejected key back, like some vendors
    bot = bot_create(
        organization=org,
        name="B",
        provider="custom",
        base_url=fake_llm.base_url,
        model=scripted(reply="OK"),
        api_key=wrong,
    )
    url = reverse("admin:chatbots_bot_test_connection_detail", args=[bot.pk])
    page = client.get(url, follow=True).content.decode()
    assert "HTTP 401" in page and "Incorrect API key provided" in page
    assert wrong not in page

    bot_update(bot=bot, data={}, api_key=SERVER_KEY)
    page = client.get(url, follow=True).content.decode()
    assert "The model replied: &#x27;OK&#x27;" in page or "The model replied: 'OK'" in page
    assert SERVER_KEY not in page

    changelist = client.post(
        reverse("admin:chatbots_bot_changelist"),
        {"action": "test_connection", "_selected_action": [bot.pk]},
        follow=True,
    ).content.decode()
    assert "Connected." in changelist and SERVER_KEY not in changelist


def test_outsiders_and_members_cannot_test_or_see_another_organizations_bot(client, org, fake_llm):
    bot = bot_create(
        organization=org,
        name="B",
        provider="custom",
        base_url=fake_llm.base_url,
        model=scripted(),
        api_key=SERVER_KEY,
    )
    other_org = make_organization(name="Globex")
    client.force_login(owner_of(other_org))
    assert client.get(reverse("admin:chatbots_bot_change", args=[bot.pk])).status_code == 404
    assert client.get(reverse("admin:chatbots_bot_test_connection_detail", args=[bot.pk])).status_code == 404
    member = add_member(organization=org, role=Role.MEMBER)
    client.force_login(member)
    assert client.get(reverse("admin:chatbots_bot_change", args=[bot.pk])).status_code == 200  # may view
    assert client.get(reverse("admin:chatbots_bot_test_connection_detail", args=[bot.pk])).status_code == 403
    assert fake_llm.requests == []  # neither reached the provider


def test_provider_keys_appear_in_no_public_response(client, org):
    bot = bot_create(
        organization=org,
        name="B",
        provider="openai",
        api_key=PROVIDER_KEY,
        fallback_provider="groq",
        fallback_model="llama-3.1-8b-instant",
        fallback_api_key=PROVIDER_KEY + "2",
    )
    for url in (
        f"/widget/{bot.public_id}/config.json",
        f"/widget/{bot.public_id}/",
        f"/chat/{bot.public_id}/",
    ):
        body = client.get(url).content.decode()
        assert PROVIDER_KEY not in body and bot.api_key_encrypted not in body, url


@pytest.mark.parametrize("entry", UNUSABLE_ORIGINS)
def test_an_allowed_origin_the_widget_cannot_use_is_refused_at_save(org, entry):
    with pytest.raises(ValidationError, match="not an origin"):
        bot_create(organization=org, name="B", allowed_origins=["https://ok.example", entry])


def test_allowed_origins_are_stored_as_the_widget_uses_them(org):
    from chatbots.origins import allowed_origins

    entries = [
        "HTTPS://Shop.Example:443/",
        "https://*.Example.com",
        "http://localhost:8200",
        "https://shop.example",
    ]
    bot = bot_create(organization=org, name="B", allowed_origins=entries)
    assert bot.allowed_origins == ["https://shop.example", "https://*.example.com", "http://localhost:8200"]
    assert allowed_origins(bot) == bot.allowed_origins  # one rule: what is saved is what is used
    assert bot_update(bot=bot, data={"allowed_origins": ["*"]}).allowed_origins == ["*"]
    assert bot_update(bot=bot, data={"allowed_origins": [" ", ""]}).allowed_origins == []


def test_the_admin_shows_an_unusable_allowed_origin_on_the_form(client, owner, org):
    client.force_login(owner)
    data = admin_form_data(allowed_origins="https://shop.example\nhttps://user@shop.example")
    response = client.post(reverse("admin:chatbots_bot_add"), data)
    assert response.status_code == 200
    assert "is not an origin" in response.content.decode()
    assert not Bot.objects.filter(organization=org).exists()
