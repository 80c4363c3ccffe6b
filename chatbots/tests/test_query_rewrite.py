"""A bot with a model has a follow-up rewritten into a standalone question, which is searched and stored with
the answer; a first or self-contained question is not rewritten; a slow or failing rewrite falls back to the
offline conversational search; an offline bot never calls a model. Real pipeline, database, embedder and
Redis; the model is the local OpenAI-compatible server, which answers rewrite requests deterministically."""

from __future__ import annotations

import httpx
import pytest
from asgiref.sync import async_to_sync, sync_to_async

from accounts.models import Role
from accounts.tests.factories import add_member
from chatbots.llm.rewrite import REWRITE_INSTRUCTION
from chatbots.models import Message, MessageRole
from chatbots.testing import collect_answer, connect
from chatbots.tests.factories import make_api_key, make_bot
from knowledge.models import SourceKind
from knowledge.services import source_create, source_ingest

pytestmark = pytest.mark.django_db(transaction=True)

ARTICLES = {
    "Refunds": "Refunds are paid to the card you used. A refund for a domestic order takes 3 to 5 working "
    "days. For international orders a refund takes up to 14 days, because the bank converts the currency.",
    "Gift cards": "Gift cards can be bought in amounts from 10 to 200 euros. A gift card is valid for two "
    "years and can be combined with other gift cards on one order.",
    "Loyalty points": "You earn one point for every euro you spend. One hundred points are worth five euros "
    "off your next order. Points expire after 18 months without an order.",
}


def _help_center_bot(llm_server=None, **fields):
    if llm_server is not None:
        fields = {"provider": "custom", "base_url": llm_server.base_url, "model": "fake", **fields}
    bot = make_bot(**fields)
    for title, text in ARTICLES.items():
        source = source_create(organization=bot.organization, kind=SourceKind.TEXT, title=title, text=text)
        source_ingest(source_id=source.pk)
        bot.sources.add(source)
    return bot


def _rewrite_requests(llm_server) -> list:
    return [
        request
        for request in llm_server.requests
        if request.messages and str(request.messages[0].get("content", "")).startswith(REWRITE_INSTRUCTION)
    ]


async def _conversation(bot, *questions: str) -> list[dict]:
    ws = await connect(bot)
    await ws.receive_json_from()
    answers = []
    for question in questions:
        await ws.send_json_to({"type": "message", "text": question})
        answers.append(await collect_answer(ws))
    await ws.disconnect(timeout=15)
    return answers


async def _last_answer(bot) -> Message:
    return await Message.objects.filter(role=MessageRole.ASSISTANT, conversation__bot=bot).alast()


async def test_a_follow_up_is_rewritten_by_the_model_and_the_rewrite_is_searched(llm_server) -> None:
    bot = await sync_to_async(_help_center_bot)(llm_server)
    llm_server.reset()
    first, follow_up = await _conversation(bot, "What is your refund policy?", "How long does that take?")
    assert first["sources"][0]["title"] == "Refunds"
    rewrites = _rewrite_requests(llm_server)
    assert len(rewrites) == 1  # the first question has no conversation to resolve
    assert "What is your refund policy?" in rewrites[0].messages[-1]["content"]
    assert rewrites[0].params.get("max_tokens") == 64 and rewrites[0].stream is False
    assert follow_up["sources"][0]["title"] == "Refunds"
    stored = await _last_answer(bot)
    assert stored.search_rewritten is True
    assert stored.search_query == "How long does refund policy take?"
    answer_request = llm_server.requests[-1]  # the answer's own request came after the rewrite
    answer_tokens = sum(len(str(m["content"]).split()) for m in answer_request.messages)
    assert stored.prompt_tokens > answer_tokens  # the rewrite's tokens count with the answer


async def test_a_question_that_names_its_own_topic_is_not_rewritten_nor_pulled_back(llm_server) -> None:
    bot = await sync_to_async(_help_center_bot)(llm_server)
    llm_server.reset()
    _, other = await _conversation(bot, "What is your refund policy?", "How long is a gift card valid?")
    assert _rewrite_requests(llm_server) == []
    assert other["sources"][0]["title"] == "Gift cards"
    stored = await _last_answer(bot)
    # Searched with the conversation's words (they help a follow-up that looks self-contained), but ranked
    # and judged by its own topic.
    assert stored.search_rewritten is False
    assert stored.search_query == "What is your refund policy? How long is a gift card valid?"


@pytest.mark.parametrize("script", ["rewrite_stall=5", "rewrite_status=500"])
async def test_a_slow_or_failing_rewrite_falls_back_to_the_conversational_search(
    llm_server, settings, script
) -> None:
    settings.LLM_REWRITE_TIMEOUT = 0.3
    bot = await sync_to_async(_help_center_bot)(llm_server, model=f"fake?{script}")
    llm_server.reset()
    _, follow_up = await _conversation(bot, "How do loyalty points work?", "Is there a time limit on them?")
    assert len(_rewrite_requests(llm_server)) == 1
    assert follow_up["done"] is not None and follow_up["errors"] == []
    assert follow_up["sources"][0]["title"] == "Loyalty points"
    stored = await _last_answer(bot)
    assert stored.search_rewritten is False
    assert stored.search_query == "How do loyalty points work? Is there a time limit on them?"


async def test_a_bot_whose_setting_is_off_is_never_rewritten(llm_server) -> None:
    bot = await sync_to_async(_help_center_bot)(llm_server, query_rewrite=False)
    llm_server.reset()
    _, follow_up = await _conversation(bot, "What is your refund policy?", "How long does that take?")
    assert _rewrite_requests(llm_server) == []
    assert follow_up["sources"][0]["title"] == "Refunds"
    assert (await _last_answer(bot)).search_query == "What is your refund policy? How long does that take?"


async def test_an_offline_bot_stores_what_it_searched_without_a_model_call(llm_server, settings) -> None:
    settings.LLM_DEFAULT_API_KEY = settings.LLM_DEFAULT_BASE_URL = ""
    bot = await sync_to_async(_help_center_bot)()  # no provider configured: offline
    llm_server.reset()
    _, follow_up = await _conversation(bot, "What is your refund policy?", "How long does that take?")
    assert llm_server.requests == []
    assert follow_up["sources"][0]["title"] == "Refunds"
    answers = [m async for m in Message.objects.filter(role=MessageRole.ASSISTANT, conversation__bot=bot)]
    assert [m.search_query for m in answers] == [
        "What is your refund policy?",
        "What is your refund policy? How long does that take?",
    ]
    assert not any(m.search_rewritten for m in answers)


async def test_the_openai_history_is_rewritten_too(llm_server, live_server) -> None:
    bot = await sync_to_async(_help_center_bot)(llm_server)
    key = (await sync_to_async(make_api_key)(bot)).key
    llm_server.reset()
    body = {
        "model": bot.public_id,
        "messages": [
            {"role": "user", "content": "How do loyalty points work?"},
            {"role": "assistant", "content": "You earn points when you order."},
            {"role": "user", "content": "do they expire?"},
        ],
    }
    async with httpx.AsyncClient(base_url=live_server.url, timeout=30) as client:
        response = await client.post(
            "/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"}
        )
    assert response.status_code == 200, response.text
    assert response.json()["sources"][0]["title"] == "Loyalty points"
    assert len(_rewrite_requests(llm_server)) == 1
    stored = await _last_answer(bot)
    assert stored.search_rewritten and stored.search_query == "do loyalty points work expire?"


def test_the_transcript_shows_what_was_searched(llm_server, client) -> None:
    bot = _help_center_bot(llm_server)
    async_to_sync(_conversation)(bot, "What is your refund policy?", "How long does that take?")
    answer = Message.objects.filter(role=MessageRole.ASSISTANT, conversation__bot=bot).last()
    client.force_login(add_member(organization=bot.organization, role=Role.MEMBER))
    body = client.get(f"/admin/chatbots/conversation/{answer.conversation_id}/change/").content.decode()
    assert "Searched (rewritten by the model): “How long does refund policy take?”" in body
    assert "Searched: “What is your refund policy?”" in body


async def test_a_question_in_another_language_is_searched_in_the_knowledges_and_answered_in_its_own(
    llm_server,
) -> None:
    bot = await sync_to_async(_help_center_bot)(llm_server)
    llm_server.reset()
    question = "¿Cuánto tarda el reembolso de un pedido internacional?"
    (answer,) = await _conversation(bot, question)
    rewrites = _rewrite_requests(llm_server)
    assert len(rewrites) == 1  # even a first message: it is written in English to be searched
    instruction, asked = rewrites[0].messages[0]["content"], rewrites[0].messages[-1]["content"]
    assert "Write the question in English, the language of the knowledge it is searched in." in instruction
    assert "Keep its language" not in instruction
    assert asked == f"Last message: {question}"
    answer_request = llm_server.requests[-1]
    assert answer_request.messages[-1]["content"] == question  # the model answers the visitor's own words
    assert (
        "Answer in the language of the user's last message, even though the knowledge below is written in "
        "English." in answer_request.messages[0]["content"]
    )
    assert answer["sources"][0]["title"] == "Refunds"
    assert (await _last_answer(bot)).search_rewritten is True


async def test_a_question_in_the_knowledges_language_keeps_the_plain_language_rule(llm_server) -> None:
    bot = await sync_to_async(_help_center_bot)(llm_server)
    llm_server.reset()
    await _conversation(bot, "How long is a gift card valid?")
    assert _rewrite_requests(llm_server) == []
    system = llm_server.requests[-1].messages[0]["content"]
    assert "Answer in the language of the user's last message." in system and "even though" not in system
