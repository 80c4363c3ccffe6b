"""The widget's public pages: loader, appearance, iframe page (framing rules) and standalone chat page."""

from __future__ import annotations

import gzip
import json
import re

import pytest
from django.test import Client

from accounts.models import Organization
from chatbots.models import Bot
from chatbots.origins import (
    allowed_origins,
    frame_ancestors,
    normalize_origin,
    origin_allowed,
    socket_origin_allowed,
)
from chatbots.tests.factories import make_bot

pytestmark = pytest.mark.django_db


def _has_field(name: str) -> bool:
    return any(f.name == name for f in Bot._meta.concrete_fields)


def _bot(**fields: object) -> Bot:
    missing = [name for name in fields if not _has_field(name)]
    if missing:
        pytest.skip(f"Bot has no {missing} field yet")
    org, _ = Organization.objects.get_or_create(slug="acme", defaults={"name": "Acme"})
    bot = make_bot(organization=org, name="Helper")
    for name, value in fields.items():
        setattr(bot, name, value)
    if fields:
        bot.save(update_fields=list(fields))
    return bot


def _config(response) -> dict:
    match = re.search(rb'<script id="parlor-config" type="application/json">(.*?)</script>', response.content)
    assert match, response.content[:500]
    return json.loads(match.group(1))


def test_loader_is_small_cacheable_javascript(client: Client) -> None:
    response = client.get("/widget.js", HTTP_ACCEPT_ENCODING="gzip")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/javascript")
    assert response["Content-Encoding"] == "gzip"
    assert "max-age=300" in response["Cache-Control"]
    body = gzip.decompress(response.content)
    assert b"data-bot" in body
    assert len(response.content) <= 6 * 1024
    again = client.get("/widget.js", HTTP_IF_NONE_MATCH=response["ETag"])
    assert again.status_code == 304


def test_frame_page_may_only_be_framed_by_allowed_origins(client: Client) -> None:
    bot = _bot(allowed_origins=["https://shop.example.com/", "http://localhost:8200"])
    response = client.get(f"/widget/{bot.public_id}/?host=https://shop.example.com")
    assert response.status_code == 200
    csp = response["Content-Security-Policy"]
    assert "frame-ancestors https://shop.example.com http://localhost:8200" in csp
    assert "script-src 'self'" in csp
    assert "X-Frame-Options" not in response  # DENY would override the per-bot CSP
    config = _config(response)
    assert config["embedded"] is True
    assert config["host_origin"] == "https://shop.example.com"
    assert config["ws_path"] == f"/ws/chat/{bot.public_id}/"


def test_frame_page_ignores_a_host_that_is_not_allowed(client: Client) -> None:
    bot = _bot(allowed_origins=["https://shop.example.com"])
    response = client.get(f"/widget/{bot.public_id}/?host=https://evil.example")
    assert _config(response)["host_origin"] is None


def test_origin_rules() -> None:
    bot = Bot(name="x")
    bot.allowed_origins = ["https://*.example.com", "https://shop.test:443", "bad origin;"]
    assert normalize_origin("HTTPS://Shop.Test:443/") == "https://shop.test"
    assert origin_allowed(bot, "https://a.example.com")
    assert not origin_allowed(bot, "https://example.com")
    assert origin_allowed(bot, "https://shop.test")
    assert not origin_allowed(bot, "http://shop.test")
    assert not origin_allowed(bot, None)
    assert frame_ancestors(bot) == "https://*.example.com https://shop.test"
    bot.allowed_origins = []
    assert origin_allowed(bot, "https://anyone.example")
    bot.allowed_origins = ["*"]
    assert frame_ancestors(bot) == "*"


def test_config_tells_the_loader_whether_the_site_may_embed(client: Client) -> None:
    bot = _bot(allowed_origins=["https://shop.example.com"])
    ok = client.get(f"/widget/{bot.public_id}/config.json", HTTP_ORIGIN="https://shop.example.com")
    refused = client.get(f"/widget/{bot.public_id}/config.json", HTTP_ORIGIN="https://evil.example")
    assert ok.status_code == 200
    assert ok.json()["allowed"] is True
    assert ok.json()["title"]
    assert ok["Access-Control-Allow-Origin"] == "*"
    assert refused.json()["allowed"] is False
    assert client.get("/widget/bot_nope/config.json").status_code == 404


def test_standalone_chat_page_is_framable_by_parlor_only(client: Client) -> None:
    bot = _bot()
    response = client.get(f"/chat/{bot.public_id}/")
    assert response.status_code == 200
    assert "frame-ancestors 'self'" in response["Content-Security-Policy"]
    assert response["X-Frame-Options"] == "SAMEORIGIN"
    assert _config(response)["embedded"] is False


def test_unknown_bot_gets_a_not_found_page(client: Client) -> None:
    response = client.get("/chat/bot_doesnotexist/", HTTP_ACCEPT_LANGUAGE="de-DE,de;q=0.9")
    assert response.status_code == 404
    assert "nicht verfügbar" in response.content.decode()
    assert client.get("/widget/bot_doesnotexist/").status_code == 404


def test_paused_bot_page_says_so(client: Client) -> None:
    bot = _bot(status="paused")
    response = client.get(f"/chat/{bot.public_id}/")
    assert "paused" in response.content.decode()
    frame = client.get(f"/widget/{bot.public_id}/")
    assert _config(frame)["status"] == "paused"


def test_config_json_cannot_break_out_of_the_script_tag(client: Client) -> None:
    bot = _bot()
    bot.name = "</script><script>alert(1)</script>"
    bot.save(update_fields=["name"])
    response = client.get(f"/chat/{bot.public_id}/")
    assert b"<script>alert(1)" not in response.content
    assert _config(response)["title"] in (bot.name, getattr(bot, "widget_title", None))


def test_bot_admin_page_has_embed_code_and_live_preview(client: Client) -> None:
    from accounts.tests.factories import make_organization, owner_of

    org = make_organization(name="Preview Org")
    bot = make_bot(organization=org, name="Previewed")
    client.force_login(owner_of(org))
    response = client.get(f"/admin/chatbots/bot/{bot.pk}/change/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "data-parlor-preview" in html
    assert f'src="/chat/{bot.public_id}/?preview=1"' in html
    assert f"data-bot=&quot;{bot.public_id}&quot;" in html  # the embed snippet, escaped in a textarea
    assert "parlor/admin-preview.js" in html


def test_widget_assets_stay_within_their_size_budgets() -> None:
    from bench.widget_size import APP, APP_BUDGET, LOADER, LOADER_BUDGET, sizes

    assert sum(gz for _, _, gz in sizes(LOADER)) <= LOADER_BUDGET
    assert sum(gz for _, _, gz in sizes(APP)) <= APP_BUDGET


def test_a_list_of_only_unusable_origins_allows_no_site(client: Client) -> None:
    # Stored before entries were checked at save: none of them can match, so no site may embed the bot.
    bot = _bot(allowed_origins=["https://user@shop.example", "https://shop.example;", "https://a b.example"])
    assert not origin_allowed(bot, "https://shop.example")
    assert not origin_allowed(bot, "https://evil.example")
    assert frame_ancestors(bot) == "'none'"
    frame = client.get(f"/widget/{bot.public_id}/?host=https://evil.example")
    assert "frame-ancestors 'none'" in frame["Content-Security-Policy"]
    assert _config(frame)["host_origin"] is None
    config = client.get(f"/widget/{bot.public_id}/config.json", HTTP_ORIGIN="https://evil.example")
    assert config.json()["allowed"] is False
    assert not socket_origin_allowed(bot=bot, origin="https://evil.example", host="testserver")
    assert socket_origin_allowed(bot=bot, origin="http://testserver", host="testserver")  # Parlor's own pages


def test_unusable_entries_next_to_usable_ones_match_nothing() -> None:
    bot = Bot(
        name="x",
        allowed_origins=["https://shop.example", "https://x@evil.example", "https://*.evil.example;"],
    )
    assert origin_allowed(bot, "https://shop.example")
    assert not origin_allowed(bot, "https://evil.example")
    assert not origin_allowed(bot, "https://a.evil.example")
    assert frame_ancestors(bot) == "https://shop.example"


def test_only_an_empty_list_or_a_star_opens_the_widget_to_every_site() -> None:
    assert origin_allowed(Bot(name="x", allowed_origins=[]), "https://anyone.example")
    assert frame_ancestors(Bot(name="x", allowed_origins=[])) == "*"
    assert origin_allowed(Bot(name="x", allowed_origins=["*"]), "https://anyone.example")
    assert not origin_allowed(Bot(name="x", allowed_origins=["https://*"]), "https://anyone.example")


def test_a_host_parameter_with_user_info_is_not_taken_as_the_embedding_site(client: Client) -> None:
    bot = _bot(allowed_origins=["https://*.example.com"])
    response = client.get(f"/widget/{bot.public_id}/?host=https://evil.test@a.example.com")
    assert _config(response)["host_origin"] is None


def test_save_and_runtime_agree_on_every_entry() -> None:
    from chatbots.tests.factories import UNUSABLE_ORIGINS

    for entry in UNUSABLE_ORIGINS:
        assert allowed_origins(Bot(name="x", allowed_origins=[entry])) == [], entry
