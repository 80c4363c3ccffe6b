"""The REST API's conversation and bot endpoints that complete it for developers: clearing a conversation,
messages by cursor, the visitor filter, PUT on bots, attaching and detaching a bot's knowledge sources."""

from __future__ import annotations

import pytest

from accounts.tests.factories import make_organization
from chatbots.models import Bot, Conversation, Message, MessageRole
from chatbots.tests.factories import make_api_key, make_bot, make_conversation, make_message
from knowledge.models import Source, SourceKind
from knowledge.services import source_create

pytestmark = pytest.mark.django_db


def _call(client, method: str, url: str, key: str, data=None, **params):
    headers = {"HTTP_AUTHORIZATION": f"Bearer {key}"}
    if method == "get":
        return client.get(url, params, **headers)
    return getattr(client, method)(url, data, content_type="application/json", **headers)


def _conversation(bot: Bot, *, visitor: str = "v-1", turns: int = 1) -> Conversation:
    conversation = make_conversation(bot=bot, visitor_id=visitor)
    for index in range(turns):
        make_message(conversation=conversation, role=MessageRole.USER, text=f"Question {index}")
        make_message(conversation=conversation, role=MessageRole.ASSISTANT, text=f"Answer {index}")
    return conversation


def test_deleting_a_conversation_clears_its_history(client) -> None:
    bot = make_bot()
    conversation, other = _conversation(bot, turns=2), _conversation(bot, visitor="v-2")
    key = make_api_key(bot).key
    url = f"/api/v1/conversations/{conversation.pk}/"
    assert _call(client, "delete", url, key).status_code == 204
    assert not Conversation.objects.filter(pk=conversation.pk).exists()
    assert not Message.objects.filter(conversation_id=conversation.pk).exists()
    assert Message.objects.filter(conversation=other).count() == 2
    assert _call(client, "get", url, key).status_code == 404


def test_outsider_and_read_only_key_cannot_delete_a_conversation(client) -> None:
    bot = make_bot()
    conversation = _conversation(bot)
    outsider = make_api_key(make_bot(organization=make_organization(name="Other"))).key
    read_only = make_api_key(bot, read_only=True).key
    url = f"/api/v1/conversations/{conversation.pk}/"
    assert _call(client, "delete", url, outsider).status_code == 404
    assert _call(client, "delete", url, read_only).status_code == 403
    assert Message.objects.filter(conversation=conversation).count() == 2


def test_messages_page_by_cursor_oldest_first(client) -> None:
    bot = make_bot()
    conversation = _conversation(bot, turns=3)
    key = make_api_key(bot).key
    url = f"/api/v1/conversations/{conversation.pk}/messages"
    texts, page = [], _call(client, "get", url, key, page_size=4).json()
    while True:
        assert page["conversation_id"] == str(conversation.pk) and len(page["results"]) <= 4
        texts += [m["text"] for m in page["results"]]
        if not page["next"]:
            break
        page = client.get(page["next"], HTTP_AUTHORIZATION=f"Bearer {key}").json()
    assert texts == [t for i in range(3) for t in (f"Question {i}", f"Answer {i}")]
    assert _call(client, "get", url, key, cursor="garbage").status_code == 404


def test_conversations_filter_by_visitor(client) -> None:
    bot = make_bot()
    ada, _bob = _conversation(bot, visitor="ada"), _conversation(bot, visitor="bob")
    key = make_api_key(bot).key
    rows = _call(client, "get", "/api/v1/conversations/", key, visitor="ada").json()["results"]
    assert [row["id"] for row in rows] == [str(ada.pk)]


def test_put_changes_a_bot_and_requires_its_name(client) -> None:
    bot = make_bot(name="Helper")
    key = make_api_key(bot).key
    url = f"/api/v1/bots/{bot.public_id}/"
    response = _call(client, "put", url, key, {"name": "Concierge", "temperature": 0.7})
    assert response.status_code == 200 and response.json()["name"] == "Concierge"
    bot.refresh_from_db()
    assert (bot.name, bot.temperature) == ("Concierge", 0.7)
    assert _call(client, "put", url, key, {"temperature": 0.1}).status_code == 400
    outsider = make_api_key(make_bot(organization=make_organization(name="Other"))).key
    assert _call(client, "put", url, outsider, {"name": "Mine"}).status_code == 404
    bot.refresh_from_db()
    assert bot.name == "Concierge"


def _text_source(organization, title: str) -> Source:
    return source_create(organization=organization, kind=SourceKind.TEXT, title=title, text="Boots.")


def test_sources_attach_and_detach(client) -> None:
    bot = make_bot()
    first, second = _text_source(bot.organization, "Returns"), _text_source(bot.organization, "Shipping")
    key = make_api_key(bot).key
    url = f"/api/v1/bots/{bot.public_id}/sources/"
    attached = _call(client, "post", url, key, {"source_ids": [first.pk, second.pk]})
    assert attached.status_code == 200 and attached.json()["source_ids"] == sorted([first.pk, second.pk])
    assert _call(client, "post", url, key, {"source_ids": [first.pk]}).status_code == 200  # already attached
    assert _call(client, "delete", f"{url}{first.pk}/", key).status_code == 204
    assert _call(client, "get", url, key).json()["source_ids"] == [second.pk]
    assert Source.objects.filter(pk=first.pk).exists()  # detached, not deleted
    assert _call(client, "delete", f"{url}{first.pk}/", key).status_code == 404


def test_outsider_cannot_attach_their_source_or_reach_the_bot(client) -> None:
    bot = make_bot()
    other_org = make_organization(name="Other")
    theirs = _text_source(other_org, "Secret")
    ours = _text_source(bot.organization, "Returns")
    key = make_api_key(bot).key
    url = f"/api/v1/bots/{bot.public_id}/sources/"
    refused = _call(client, "post", url, key, {"source_ids": [theirs.pk]})
    assert refused.status_code == 400 and str(theirs.pk) in refused.json()["source_ids"][0]
    outsider = make_api_key(make_bot(organization=other_org)).key
    assert _call(client, "post", url, outsider, {"source_ids": [theirs.pk]}).status_code == 404
    assert _call(client, "get", url, outsider).status_code == 404
    read_only = make_api_key(bot, read_only=True).key
    assert _call(client, "post", url, read_only, {"source_ids": [ours.pk]}).status_code == 403
    assert list(bot.sources.all()) == []
