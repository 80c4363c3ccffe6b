"""A website the widget refuses is shown on the bot's page, so its owner can allow the right one."""

from __future__ import annotations

import pytest
from django.test import Client

from accounts.tests.factories import make_organization, owner_of
from chatbots.origins import REFUSED_ORIGINS_KEPT, refused_origin_record, refused_origins_recent
from chatbots.services import bot_delete
from chatbots.tests.factories import make_bot

pytestmark = pytest.mark.django_db


def _config(client: Client, bot, origin: str):
    return client.get(f"/widget/{bot.public_id}/config.json", HTTP_ORIGIN=origin)


def test_a_refused_site_is_remembered_for_its_bot_only():
    org = make_organization()
    bot = make_bot(organization=org, allowed_origins=["https://shop.example.com"])
    other = make_bot(organization=org, name="Other", allowed_origins=["https://shop.example.com"])
    client = Client()
    assert _config(client, bot, "https://www.shop.example.com").json()["allowed"] is False
    assert _config(client, bot, "https://shop.example.com").json()["allowed"] is True
    assert [r.origin for r in refused_origins_recent(bot=bot)] == ["https://www.shop.example.com"]
    assert refused_origins_recent(bot=other) == []


def test_the_list_is_bounded_newest_first_and_drops_sites_allowed_since():
    bot = make_bot(allowed_origins=["https://shop.example.com"])
    for n in range(REFUSED_ORIGINS_KEPT + 5):
        refused_origin_record(bot=bot, origin=f"https://site{n}.example")
    refused_origin_record(bot=bot, origin="not an origin")  # what a forged header may carry: ignored
    recent = [r.origin for r in refused_origins_recent(bot=bot)]
    assert len(recent) == REFUSED_ORIGINS_KEPT
    assert recent[0] == f"https://site{REFUSED_ORIGINS_KEPT + 4}.example"
    bot.allowed_origins = [*bot.allowed_origins, recent[0]]
    bot.save(update_fields=["allowed_origins"])
    assert recent[0] not in [r.origin for r in refused_origins_recent(bot=bot)]


def test_owner_sees_refused_sites_on_the_bot_page_with_a_button_to_allow_one(client: Client):
    org = make_organization()
    bot = make_bot(organization=org, allowed_origins=["https://shop.example.com"])
    _config(Client(), bot, "https://staging.shop.example.com")
    client.force_login(owner_of(org))
    html = client.get(f"/admin/chatbots/bot/{bot.pk}/change/").content.decode()
    assert "Refused websites" in html
    assert 'data-parlor-allow="https://staging.shop.example.com"' in html


def test_outsider_never_sees_another_organizations_refused_sites(client: Client):
    bot = make_bot(organization=make_organization(), allowed_origins=["https://shop.example.com"])
    _config(Client(), bot, "https://secret-staging.example")
    outsider_org = make_organization(name="Outsider")
    client.force_login(owner_of(outsider_org))
    response = client.get(f"/admin/chatbots/bot/{bot.pk}/change/")
    assert response.status_code in (302, 404)
    assert b"secret-staging" not in response.content
    assert [r.origin for r in refused_origins_recent(bot=bot)] == ["https://secret-staging.example"]


def test_deleting_the_bot_forgets_its_refused_sites():
    bot = make_bot(allowed_origins=["https://shop.example.com"])
    refused_origin_record(bot=bot, origin="https://elsewhere.example")
    pk = bot.pk
    bot_delete(bot=bot)
    bot.pk = pk
    assert refused_origins_recent(bot=bot) == []
