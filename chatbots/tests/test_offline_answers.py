"""What an offline answer quotes and cites, through the chat pipeline (no model configured)."""

from __future__ import annotations

import httpx
import pytest
from asgiref.sync import sync_to_async

from accounts.tests.factories import make_organization
from chatbots.models import Message
from chatbots.services import bot_create
from chatbots.tests.factories import make_api_key
from config.asgi import application
from knowledge.models import SourceKind
from knowledge.services import source_create, source_ingest

pytestmark = pytest.mark.django_db(transaction=True)

RETURNS = (
    "Boots can be returned within 30 days of delivery, unworn and with the receipt. "
    "We refund the purchase price to the card you paid with within five working days. "
    "Our stores also take back boots bought online."
)
HOURS = "The shop in Graz opens at nine in the morning on weekdays and closes at six in the evening."


def _offline_bot_with_sources():
    organization = make_organization()
    bot = bot_create(organization=organization, name="Helper")  # no model anywhere: offline answers
    sources = {
        title: source_create(organization=organization, kind=SourceKind.TEXT, title=title, text=text)
        for title, text in (
            ("Returns policy", RETURNS),
            ("Returns policy (PDF)", RETURNS.replace(" ", "  ") + " Page 2"),  # the same page, copied
            ("Opening hours", HOURS),
        )
    }
    for source in sources.values():
        assert source_ingest(source_id=source.pk).status == "ready"
    bot.sources.add(*sources.values())
    return bot, make_api_key(bot).key


async def test_offline_answer_cites_only_the_passages_it_quotes() -> None:
    bot, key = await sync_to_async(_offline_bot_with_sources)()
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=application), base_url="http://testserver",
        headers={"Authorization": f"Bearer {key}"}, timeout=60,
    ) as http:  # fmt: skip
        response = await http.post(
            f"/api/v1/bots/{bot.public_id}/messages", json={"message": "How long do I have to return boots?"}
        )
    assert response.status_code == 200, response.text
    body = response.json()
    assert "Boots can be returned within 30 days" in body["answer"]
    assert "nine in the morning" not in body["answer"]
    # One of the two copies is quoted and cited; the opening hours were retrieved but not quoted.
    titles = [source["title"] for source in body["sources"]]
    assert len(titles) == 1 and titles[0].startswith("Returns policy"), titles
    assert body["answer"].count("— Source:") == 1
    stored = await Message.objects.aget(pk=body["message_id"])
    assert [source["title"] for source in stored.sources] == titles
