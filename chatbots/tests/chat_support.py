"""Fixtures for chat tests: a taught bot answering through the local OpenAI-compatible server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from accounts.services import api_key_create
from accounts.tests.factories import make_organization, owner_of
from chatbots.llm.testserver import FakeLLMServer
from chatbots.models import Bot
from chatbots.pipeline.blocking import wait_until_idle
from chatbots.services import api_key_set_bots, bot_create
from knowledge.models import SourceKind
from knowledge.services import source_create, source_ingest

RETURNS_TEXT = (
    "# Returns policy\n\n"
    "You can return boots within 30 days of delivery for a full refund. "
    "Items must be unworn and in their original box.\n\n"
    "# Shipping\n\nStandard shipping takes 3 to 5 working days. Express shipping arrives the next day."
)
FAQ_QUESTION = "Do you ship to Switzerland?"
FAQ_ANSWER = "Yes, we ship to Switzerland; customs fees are included in the price."


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    """A visitor who leaves mid-answer leaves the pipeline saving in a pool thread; let it finish before
    any fixture is torn down (a database flush racing it would deadlock)."""
    assert wait_until_idle(), "chat pipeline work still running after the test"


@pytest.fixture(scope="session")
def llm_server() -> Iterator[FakeLLMServer]:
    with FakeLLMServer() as server:
        yield server


def teach(bot: Bot) -> None:
    """Give the bot a text source and an FAQ, ingested now (the chat tests are not about Celery)."""
    org = bot.organization
    text = source_create(
        organization=org, kind=SourceKind.TEXT, title="Returns and shipping", text=RETURNS_TEXT
    )
    faq = source_create(
        organization=org, kind=SourceKind.FAQ, title="FAQ", faq_pairs=[(FAQ_QUESTION, FAQ_ANSWER)]
    )
    for source in (text, faq):
        source_ingest(source_id=source.pk)
    bot.sources.add(text, faq)


def make_chat_bot(
    llm_server: FakeLLMServer, *, model: str = "fake-model", name: str = "Shop helper", **fields
) -> Bot:
    organization = make_organization(name=f"{name} Inc")
    bot = bot_create(
        organization=organization,
        name=name,
        provider="custom",
        base_url=llm_server.base_url,
        model=model,
        **fields,
    )
    teach(bot)
    return bot


def make_api_key(bot: Bot, *, bots: list[Bot] | None = None, **options):
    """A full API key string for the bot's organization (and the ApiKey row), limited to ``bots`` if
    given."""
    issued = api_key_create(
        organization=bot.organization, created_by=owner_of(bot.organization), name="test", **options
    )
    api_key_set_bots(api_key=issued.api_key, bots=bots)
    return issued
