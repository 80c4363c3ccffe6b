"""The answer cache: a first question answered before is answered from Redis, streamed like any answer,
marked in the transcript, invalidated by any change to the bot or its knowledge, and never shared."""

from __future__ import annotations

import json
from decimal import Decimal

import httpx
import pytest
from asgiref.sync import sync_to_async

from chatbots.models import Message, MessageRole
from chatbots.services import bot_create, bot_delete, bot_update, source_set_bots
from chatbots.tests.factories import FAQ_ANSWER, FAQ_QUESTION, make_api_key, make_chat_bot, scripted
from config.asgi import application
from knowledge.models import Source, SourceKind
from knowledge.services import source_create, source_ingest, source_update

pytestmark = pytest.mark.django_db(transaction=True)
QUESTION = "How long do I have to return boots?"
REPLY = "Boots can be returned within 30 days [1]."


def client(key: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=application), base_url="http://testserver",
                             headers={"Authorization": f"Bearer {key}"}, timeout=30)  # fmt: skip


async def setup_bot(llm_server, **fields):
    model = scripted("fake", reply=REPLY.replace(" ", "+"))
    bot = await sync_to_async(make_chat_bot)(llm_server, model=model, **fields)
    issued = await sync_to_async(make_api_key)(bot)
    return bot, issued.key


def model_calls(llm_server, bot) -> int:
    return sum(
        1 for r in llm_server.requests if r.path.endswith("/chat/completions") and r.model == bot.model
    )


async def ask(key: str, bot, text: str = QUESTION, **extra) -> dict:
    async with client(key) as http:
        response = await http.post(f"/api/v1/bots/{bot.public_id}/messages", json={"message": text, **extra})
    assert response.status_code == 200, response.text
    return response.json()


async def test_a_repeated_first_question_is_answered_from_the_cache_without_a_model_call(llm_server) -> None:
    bot, key = await setup_bot(llm_server)
    first = await ask(key, bot)
    second = await ask(
        key, bot, "  how long do I have to RETURN boots "
    )  # same question, written differently
    assert model_calls(llm_server, bot) == 1
    assert second["answer"] == first["answer"] == REPLY
    assert second["sources"] == first["sources"] and second["sources"]
    assert second["conversation_id"] != first["conversation_id"]
    original = await Message.objects.aget(pk=first["message_id"])
    cached = await Message.objects.aget(pk=second["message_id"])
    assert not original.answered_from_cache and original.completion_tokens > 0
    assert cached.answered_from_cache and cached.provider == "cache" and cached.model == original.model
    assert cached.cost_usd == Decimal(0) and cached.prompt_tokens == cached.completion_tokens == 0
    assert cached.first_token_ms is not None and cached.text == REPLY


async def test_a_cached_answer_streams_like_any_answer(llm_server) -> None:
    bot, key = await setup_bot(llm_server)
    await ask(key, bot)
    async with client(key) as http:
        response = await http.post(
            f"/api/v1/bots/{bot.public_id}/messages", json={"message": QUESTION, "stream": True}
        )
    events = [
        (dict(line.split(": ", 1) for line in block.splitlines()))
        for block in response.text.strip().split("\n\n")
    ]
    deltas = [json.loads(e["data"])["text"] for e in events if e["event"] == "delta"]
    assert len(deltas) > 1 and "".join(deltas) == REPLY
    assert [e["event"] for e in events][-1] == "done"
    assert model_calls(llm_server, bot) == 1


async def test_a_follow_up_is_never_answered_from_the_cache(llm_server) -> None:
    bot, key = await setup_bot(llm_server)
    first = await ask(key, bot)
    await ask(key, bot, conversation_id=first["conversation_id"])  # the same words, later in a conversation
    assert model_calls(llm_server, bot) == 2
    assert not await Message.objects.filter(answered_from_cache=True).aexists()


async def test_an_openai_client_with_its_own_parameters_is_not_answered_from_the_cache(llm_server) -> None:
    bot, key = await setup_bot(llm_server)
    await ask(key, bot)
    body = {"model": bot.public_id, "messages": [{"role": "user", "content": QUESTION}], "temperature": 0.1}
    async with client(key) as http:
        response = await http.post("/v1/chat/completions", json=body)
        plain = await http.post(
            "/v1/chat/completions", json={k: v for k, v in body.items() if k != "temperature"}
        )
    assert response.status_code == plain.status_code == 200, response.text
    # The one with a temperature of its own went to the model; the plain one was answered from the cache.
    assert model_calls(llm_server, bot) == 2
    assert response.json()["choices"][0]["message"]["content"] == REPLY


async def test_changing_the_bot_invalidates_its_cached_answers(llm_server) -> None:
    bot, key = await setup_bot(llm_server)
    await ask(key, bot)
    await sync_to_async(bot_update)(bot=bot, data={"temperature": 0.7})
    again = await ask(key, bot)
    assert model_calls(llm_server, bot) == 2
    assert not (await Message.objects.aget(pk=again["message_id"])).answered_from_cache


async def test_changing_the_knowledge_invalidates_the_cached_answers(llm_server) -> None:
    bot, key = await setup_bot(llm_server)
    await ask(key, bot)
    source = await Source.objects.filter(organization=bot.organization, kind=SourceKind.TEXT).afirst()
    await sync_to_async(source_update)(source=source, data={"text": source.text + "\n\nBoots ship free."})
    await sync_to_async(source_ingest)(source_id=source.pk)
    await ask(key, bot)
    assert model_calls(llm_server, bot) == 2
    # Giving the bot another source invalidates too (its knowledge changed, though no source did).
    await ask(key, bot)
    assert model_calls(llm_server, bot) == 2

    def add_source() -> None:
        extra = source_create(
            organization=bot.organization, kind=SourceKind.TEXT, title="More", text="Socks."
        )
        source_ingest(source_id=extra.pk)
        source_set_bots(source=extra, bots=[bot])

    await sync_to_async(add_source)()
    await ask(key, bot)
    assert model_calls(llm_server, bot) == 3


async def test_cached_answers_are_never_shared_across_bots_or_organizations(llm_server) -> None:
    bot, key = await setup_bot(llm_server)
    await ask(key, bot)

    def twin_in_same_organization():
        twin = bot_create(organization=bot.organization, name="Twin", provider="custom",
                          base_url=llm_server.base_url, model=bot.model)  # fmt: skip
        twin.sources.set(bot.sources.all())
        return twin

    twin = await sync_to_async(twin_in_same_organization)()
    other_org_bot = await sync_to_async(make_chat_bot)(llm_server, model=bot.model, name="Other shop")
    other_key = (await sync_to_async(make_api_key)(other_org_bot)).key
    answers = [await ask(key, twin), await ask(other_key, other_org_bot)]
    assert model_calls(llm_server, bot) == 3  # same settings, knowledge and question: still no hit
    for answer in answers:
        assert not (await Message.objects.aget(pk=answer["message_id"])).answered_from_cache


async def test_an_faq_match_comes_before_the_cache(llm_server) -> None:
    bot, key = await setup_bot(llm_server)
    for _ in range(2):
        answer = await ask(key, bot, FAQ_QUESTION)
        assert answer["answer"] == FAQ_ANSWER
    answers = Message.objects.filter(conversation__bot=bot, role=MessageRole.ASSISTANT)
    assert await answers.filter(answered_from_faq=True).acount() == 2
    assert not await answers.filter(answered_from_cache=True).aexists()
    assert model_calls(llm_server, bot) == 0


async def test_an_faq_added_later_wins_over_a_cached_answer(llm_server) -> None:
    bot, key = await setup_bot(llm_server)
    await ask(key, bot)
    faq = await Source.objects.filter(organization=bot.organization, kind=SourceKind.FAQ).afirst()
    await sync_to_async(source_update)(source=faq, data={}, faq_pairs=[(QUESTION, "Thirty days, always.")])
    await sync_to_async(source_ingest)(source_id=faq.pk)
    answer = await ask(key, bot)
    assert answer["answer"] == "Thirty days, always."


async def test_a_bot_with_the_cache_switched_off_calls_the_model_every_time(llm_server) -> None:
    bot, key = await setup_bot(llm_server, answer_cache_enabled=False)
    await ask(key, bot)
    await ask(key, bot)
    assert model_calls(llm_server, bot) == 2


async def test_cached_answers_expire_after_the_bots_ttl(llm_server, redis_client) -> None:
    bot, key = await setup_bot(llm_server, answer_cache_ttl_seconds=600)
    await ask(key, bot)
    keys = list(redis_client.scan_iter(match=f"parlor:answer-cache:{bot.organization_id}:{bot.pk}:*"))
    assert len(keys) == 1
    assert 0 < redis_client.ttl(keys[0]) <= 600
    assert QUESTION.encode() not in redis_client.get(keys[0])  # the visitor's words are not stored


async def test_deleting_a_bot_removes_its_cached_answers(llm_server, redis_client) -> None:
    bot, key = await setup_bot(llm_server)
    await ask(key, bot)
    pattern = f"parlor:answer-cache:{bot.organization_id}:{bot.pk}:*"
    assert list(redis_client.scan_iter(match=pattern))
    await sync_to_async(bot_delete)(bot=bot)
    assert not list(redis_client.scan_iter(match=pattern))


async def test_a_customer_switches_the_cache_off_over_the_bots_api(llm_server) -> None:
    bot, key = await setup_bot(llm_server)
    await ask(key, bot)
    async with client(key) as http:
        response = await http.patch(f"/api/v1/bots/{bot.public_id}/", json={"answer_cache_enabled": False})
    assert response.status_code == 200 and response.json()["answer_cache_enabled"] is False
    await ask(key, bot)
    assert model_calls(llm_server, bot) == 2
