"""The WebSocket transport end to end: real consumer, real pipeline, real database and Redis; the model is
the local OpenAI-compatible server."""

from __future__ import annotations

import asyncio

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator

from chatbots.models import Conversation, Message, MessageRole, MessageStatus
from chatbots.testing import VISITOR, collect_answer, connect
from chatbots.tests.factories import FAQ_ANSWER, FAQ_QUESTION, make_chat_bot
from config.asgi import application

pytestmark = pytest.mark.django_db(transaction=True)


async def test_answer_streams_with_sources_and_is_stored(llm_server) -> None:
    bot = await sync_to_async(make_chat_bot)(
        llm_server, model="fake?reply=Boots+can+be+returned+within+30+days+[1]."
    )
    ws = await connect(bot)
    ready = await ws.receive_json_from()
    assert ready["type"] == "ready" and ready["conversation_id"] is None
    assert ready["bot"]["greeting"] == bot.greeting and ready["bot"]["bot"] == bot.public_id
    await ws.send_json_to({"type": "message", "text": "How long do I have to return boots?"})
    answer = await collect_answer(ws)
    await ws.disconnect(timeout=15)

    assert answer["text"] == "Boots can be returned within 30 days [1]."
    assert answer["sources"][0]["title"] == "Returns and shipping"
    done = answer["done"]
    assert done["incomplete"] is False and done["usage"]["completion_tokens"] > 0
    conversation = await Conversation.objects.aget(pk=done["conversation_id"])
    messages = [m async for m in Message.objects.filter(conversation=conversation).order_by("id")]
    assert [m.role for m in messages] == [MessageRole.USER, MessageRole.ASSISTANT]
    assert messages[0].text == "How long do I have to return boots?"
    reply = messages[1]
    assert reply.pk == done["message_id"] and reply.text == answer["text"]
    assert reply.status == MessageStatus.COMPLETE and reply.sources == answer["sources"]
    assert reply.completion_tokens > 0 and reply.prompt_tokens > 0
    assert reply.first_token_ms is not None and reply.latency_ms >= reply.first_token_ms
    assert conversation.organization_id == bot.organization_id and conversation.visitor_id == VISITOR
    # The prompt sent to the model carried the retrieved knowledge.
    system = llm_server.requests[-1].messages[0]
    assert system["role"] == "system" and "within 30 days of delivery" in system["content"]


async def test_faq_match_answers_directly_without_the_model(llm_server) -> None:
    bot = await sync_to_async(make_chat_bot)(llm_server, model="fake?status=500")
    llm_server.reset()
    ws = await connect(bot)
    await ws.receive_json_from()
    await ws.send_json_to({"type": "message", "text": FAQ_QUESTION})
    answer = await collect_answer(ws)
    await ws.disconnect(timeout=15)
    assert answer["text"] == FAQ_ANSWER
    assert llm_server.requests == []
    reply = await Message.objects.aget(pk=answer["done"]["message_id"])
    assert reply.answered_from_faq and reply.status == MessageStatus.COMPLETE


async def test_conversation_resumes_with_history_and_memory(llm_server) -> None:
    # Mixed style: "What is my name?" is not in the knowledge; a strict bot would give its fallback reply.
    bot = await sync_to_async(make_chat_bot)(llm_server, model="fake", answer_style="mixed")
    ws = await connect(bot)
    await ws.receive_json_from()
    await ws.send_json_to({"type": "message", "text": "My name is Ada."})
    first = await collect_answer(ws)
    await ws.disconnect(timeout=15)
    conversation_id = first["done"]["conversation_id"]

    ws = await connect(bot, conversation=conversation_id)
    ready = await ws.receive_json_from()
    assert ready["conversation_id"] == conversation_id
    await ws.send_json_to({"type": "history"})
    history = await ws.receive_json_from()
    assert [m["role"] for m in history["messages"]] == ["user", "assistant"]
    assert history["messages"][0]["text"] == "My name is Ada."
    llm_server.reset()
    await ws.send_json_to({"type": "message", "text": "What is my name?"})
    second = await collect_answer(ws)
    await ws.disconnect(timeout=15)
    assert second["done"]["conversation_id"] == conversation_id
    sent = llm_server.requests[-1].messages
    assert any(m["role"] == "user" and m["content"] == "My name is Ada." for m in sent)
    assert await Message.objects.filter(conversation_id=conversation_id).acount() == 4


async def test_visitor_leaving_mid_answer_cancels_upstream_and_keeps_partial(llm_server) -> None:
    bot = await sync_to_async(make_chat_bot)(llm_server, model="fake?words=400&tps=40&id=leave")
    llm_server.reset()
    ws = await connect(bot)
    await ws.receive_json_from()
    await ws.send_json_to({"type": "message", "text": "Tell me everything about returns."})
    assert (await ws.receive_json_from(timeout=10))["type"] == "accepted"
    first = await ws.receive_json_from(timeout=10)
    assert first["type"] == "delta"
    await ws.disconnect(timeout=15)

    async def stored():
        return await Message.objects.filter(role=MessageRole.ASSISTANT, conversation__bot=bot).afirst()

    for _ in range(300):  # a deadline for a loaded machine, not a timing assertion
        reply = await stored()
        if reply:
            break
        await asyncio.sleep(0.05)
    assert reply is not None and reply.status == MessageStatus.INCOMPLETE
    assert reply.error_code == "client_disconnected" and reply.text.startswith(first["text"])
    user = await Message.objects.aget(role=MessageRole.USER, conversation=reply.conversation_id)
    assert user.text == "Tell me everything about returns."
    assert await sync_to_async(llm_server.wait_for)(
        lambda reqs: reqs and reqs[-1].outcome == "client_disconnected", 15
    ), [r.outcome for r in llm_server.requests]


async def test_connection_lost_during_the_first_answer_continues_the_same_conversation(llm_server) -> None:
    bot = await sync_to_async(make_chat_bot)(llm_server, model="fake?words=40&tps=20", answer_style="mixed")
    ws = await connect(bot)
    assert (await ws.receive_json_from())["conversation_id"] is None  # a new visitor
    await ws.send_json_to({"type": "message", "text": "My name is Ada. How do returns work?"})
    accepted = await ws.receive_json_from(timeout=10)
    assert accepted["type"] == "accepted"  # before any token: the client knows its conversation
    conversation_id = accepted["conversation_id"]
    assert (await ws.receive_json_from(timeout=10))["type"] == "delta"
    await ws.disconnect(timeout=15)  # the connection drops in the middle of the very first answer

    async def partial_stored() -> bool:
        return await Message.objects.filter(
            conversation_id=conversation_id, role=MessageRole.ASSISTANT
        ).aexists()

    for _ in range(300):  # a deadline for a loaded machine, not a timing assertion
        if await partial_stored():
            break
        await asyncio.sleep(0.05)

    ws = await connect(bot, conversation=conversation_id)  # the widget reconnects with the id it kept
    assert (await ws.receive_json_from())["conversation_id"] == conversation_id
    await ws.send_json_to({"type": "message", "text": "What is my name?"})
    follow_up = await collect_answer(ws)
    await ws.disconnect(timeout=15)

    assert follow_up["done"]["conversation_id"] == conversation_id
    assert await Conversation.objects.filter(bot=bot).acount() == 1
    messages = [m async for m in Message.objects.filter(conversation_id=conversation_id).order_by("id")]
    assert [(m.role, m.status) for m in messages] == [
        (MessageRole.USER, MessageStatus.COMPLETE),
        (MessageRole.ASSISTANT, MessageStatus.INCOMPLETE),
        (MessageRole.USER, MessageStatus.COMPLETE),
        (MessageRole.ASSISTANT, MessageStatus.COMPLETE),
    ]
    # The follow-up was answered with the whole conversation, the interrupted first answer included.
    sent = llm_server.requests[-1].messages
    assert any(m["role"] == "user" and m["content"].startswith("My name is Ada.") for m in sent)
    assert any(m["role"] == "assistant" and m["content"] == messages[1].text for m in sent)


async def test_provider_failure_after_tokens_keeps_partial_answer(llm_server, settings) -> None:
    settings.LLM_MAX_RETRIES = 0
    bot = await sync_to_async(make_chat_bot)(llm_server, model="fake?words=50&break_after=5&id=broken")
    ws = await connect(bot)
    await ws.receive_json_from()
    await ws.send_json_to({"type": "message", "text": "Tell me about shipping."})
    answer = await collect_answer(ws)
    await ws.disconnect(timeout=15)
    assert answer["done"]["incomplete"] is True and answer["text"]
    reply = await Message.objects.aget(pk=answer["done"]["message_id"])
    assert reply.status == MessageStatus.INCOMPLETE and reply.text == answer["text"]
    assert await Message.objects.filter(conversation=reply.conversation_id, role=MessageRole.USER).aexists()


async def test_provider_timeout_falls_back_and_everything_is_stored(llm_server, settings) -> None:
    settings.LLM_MAX_RETRIES = 0
    settings.LLM_FIRST_TOKEN_TIMEOUT = 0.5
    bot = await sync_to_async(make_chat_bot)(llm_server, model="fake?stall=5&id=stall")
    ws = await connect(bot)
    await ws.receive_json_from()
    await ws.send_json_to({"type": "message", "text": "How long do I have to return boots?"})
    answer = await collect_answer(ws)
    await ws.disconnect(timeout=15)
    reply = await Message.objects.aget(pk=answer["done"]["message_id"])
    # The offline provider answered from the knowledge and said no model is connected.
    assert reply.offline and answer["done"]["offline"] is True
    assert "30 days" in reply.text
    assert await Message.objects.filter(conversation=reply.conversation_id, role=MessageRole.USER).aexists()


async def test_rate_limit_refuses_with_retry_time_and_keeps_the_message(llm_server, settings) -> None:
    settings.CHAT_RATE_LIMIT_VISITOR = "2/min"
    bot = await sync_to_async(make_chat_bot)(llm_server, model="fake")
    ws = await connect(bot)
    await ws.receive_json_from()
    for text in ("one", "two"):
        await ws.send_json_to({"type": "message", "text": text})
        assert (await collect_answer(ws))["done"] is not None
    await ws.send_json_to({"type": "message", "text": "three"})
    refused = await collect_answer(ws)
    await ws.disconnect(timeout=15)
    error = refused["errors"][0]
    assert error["code"] == "rate_limited" and 1 <= error["retry_after"] <= 60
    stored = await Message.objects.aget(text="three")
    assert stored.status == MessageStatus.FAILED and stored.error_code == "rate_limited"
    assert await Message.objects.filter(role=MessageRole.ASSISTANT).acount() == 2


async def test_second_message_while_streaming_is_refused_as_busy(llm_server) -> None:
    bot = await sync_to_async(make_chat_bot)(llm_server, model="fake?words=60&tps=30&id=busy")
    ws = await connect(bot)
    await ws.receive_json_from()
    await ws.send_json_to({"type": "message", "text": "How long does standard shipping take?"})
    assert (await ws.receive_json_from(timeout=10))["type"] == "accepted"
    assert (await ws.receive_json_from(timeout=10))["type"] == "delta"
    await ws.send_json_to({"type": "message", "text": "second"})
    frames = []
    while True:
        frame = await ws.receive_json_from(timeout=20)
        frames.append(frame)
        if frame["type"] == "done":
            break
    await ws.disconnect(timeout=15)
    assert any(f["type"] == "error" and f["code"] == "busy" for f in frames)


async def test_malformed_and_oversize_frames_get_error_frames(llm_server, settings) -> None:
    bot = await sync_to_async(make_chat_bot)(llm_server, model="fake")
    ws = await connect(bot)
    await ws.receive_json_from()
    await ws.send_to(text_data="not json{")
    assert (await ws.receive_json_from())["code"] == "invalid_frame"
    await ws.send_to(text_data='["a list"]')
    assert (await ws.receive_json_from())["code"] == "invalid_frame"
    await ws.send_to(bytes_data=b"\x00\x01")
    assert (await ws.receive_json_from())["code"] == "invalid_frame"
    await ws.send_to(text_data='{"type": "message", "text": "' + "x" * 20000 + '"}')
    assert (await ws.receive_json_from())["code"] == "invalid_frame"
    await ws.send_json_to({"type": "message", "text": "x" * (settings.CHAT_MAX_MESSAGE_CHARS + 1)})
    assert (await ws.receive_json_from())["code"] == "message_too_long"
    await ws.send_json_to({"type": "message", "text": "   "})
    assert (await ws.receive_json_from())["code"] == "invalid_message"
    await ws.send_json_to({"type": "ping"})
    assert (await ws.receive_json_from()) == {"type": "pong"}  # still alive
    await ws.disconnect(timeout=15)
    assert await Message.objects.acount() == 0


async def test_feedback_is_stored_for_the_conversations_own_answer(llm_server) -> None:
    bot = await sync_to_async(make_chat_bot)(llm_server, model="fake")
    ws = await connect(bot)
    await ws.receive_json_from()
    await ws.send_json_to({"type": "message", "text": "hello"})
    done = (await collect_answer(ws))["done"]
    await ws.send_json_to(
        {"type": "feedback", "message_id": done["message_id"], "value": "up", "comment": "great"}
    )
    assert await ws.receive_json_from() == {
        "type": "feedback_saved",
        "message_id": done["message_id"],
        "value": "up",
    }
    await ws.send_json_to({"type": "feedback", "message_id": done["message_id"] - 1, "value": "down"})
    assert (await ws.receive_json_from())["code"] == "message_not_found"  # a user message cannot be rated
    await ws.disconnect(timeout=15)
    reply = await Message.objects.aget(pk=done["message_id"])
    assert (reply.feedback, reply.feedback_comment) == ("up", "great")


async def test_other_tenants_bot_and_conversation_get_only_a_refusal(llm_server) -> None:
    ours = await sync_to_async(make_chat_bot)(llm_server, model="fake", name="Ours")
    theirs = await sync_to_async(make_chat_bot)(llm_server, model="fake", name="Theirs")
    ws = await connect(theirs)
    await ws.receive_json_from()
    await ws.send_json_to({"type": "message", "text": "secret question"})
    their_conversation = (await collect_answer(ws))["done"]["conversation_id"]
    await ws.disconnect(timeout=15)
    before = await Message.objects.acount()

    ws = await connect(ours, conversation=their_conversation)
    assert await ws.receive_json_from() == {
        "type": "error", "code": "conversation_not_found", "message": "This conversation does not exist."
    }  # fmt: skip
    assert (await ws.receive_output())["type"] == "websocket.close"

    ws = WebsocketCommunicator(
        application, "/ws/chat/bot_doesnotexist123/", headers=[(b"host", b"testserver")]
    )
    await ws.connect()
    assert (await ws.receive_json_from())["code"] == "bot_not_found"
    # Same bot, another visitor's conversation: refused too.
    ws = await connect(theirs, visitor="someone-else-9876", conversation=their_conversation)
    assert (await ws.receive_json_from())["code"] == "conversation_not_found"
    assert await Message.objects.acount() == before


async def test_origins_outside_the_allowed_list_are_refused(llm_server) -> None:
    bot = await sync_to_async(make_chat_bot)(
        llm_server, model="fake", allowed_origins=["https://shop.example"]
    )
    ws = await connect(bot, origin="https://evil.example")
    assert (await ws.receive_json_from())["code"] == "origin_not_allowed"
    assert (await ws.receive_output())["type"] == "websocket.close"
    ws = await connect(bot, origin="https://shop.example")
    assert (await ws.receive_json_from())["type"] == "ready"
    await ws.disconnect(timeout=15)


async def test_paused_bot_says_so_and_answers_nothing(llm_server) -> None:
    bot = await sync_to_async(make_chat_bot)(llm_server, model="fake", status="paused")
    ws = await connect(bot)
    assert (await ws.receive_json_from())["type"] == "ready"
    assert (await ws.receive_json_from())["code"] == "bot_paused"
    await ws.send_json_to({"type": "message", "text": "hello?"})
    assert (await ws.receive_json_from())["code"] == "bot_paused"
    await ws.disconnect(timeout=15)
    assert not await Message.objects.filter(role=MessageRole.ASSISTANT).aexists()


async def test_unexpected_failure_ends_the_answer_with_an_error_and_keeps_the_question(
    llm_server, monkeypatch
) -> None:
    bot = await sync_to_async(make_chat_bot)(llm_server, model="fake")

    def broken_search(**kwargs):
        raise RuntimeError("index on fire")

    # Fault injection at the retrieval boundary: the consumer must not leave the visitor waiting.
    monkeypatch.setattr("knowledge.selectors.hybrid_search", broken_search)
    ws = await connect(bot)
    await ws.receive_json_from()
    await ws.send_json_to({"type": "message", "text": "Where is my order?"})
    assert (await ws.receive_json_from(timeout=10))["type"] == "accepted"
    error = await ws.receive_json_from(timeout=10)
    done = await ws.receive_json_from(timeout=10)
    assert error["code"] == "internal_error" and "index on fire" not in error["message"]
    assert done["type"] == "done" and done["incomplete"] is True
    await ws.send_json_to({"type": "ping"})
    assert await ws.receive_json_from() == {"type": "pong"}
    await ws.disconnect(timeout=15)
    assert await Message.objects.filter(text="Where is my order?", role=MessageRole.USER).aexists()
    reply = await Message.objects.aget(role=MessageRole.ASSISTANT)
    # Nothing was streamed, and the visitor did not leave: a failure, not a disconnection.
    assert (reply.status, reply.error_code) == (MessageStatus.FAILED, "internal_error")


async def test_question_keeps_its_vector_and_answer_its_retrieval_score_and_language(llm_server) -> None:
    from knowledge.embedders import embed_search_query

    bot = await sync_to_async(make_chat_bot)(llm_server, model="fake?reply=Within+30+days+[1].")
    ws = await connect(bot, language="de-CH")
    await ws.receive_json_from()
    await ws.send_json_to({"type": "message", "text": "How long do I have to return boots?"})
    answer = await collect_answer(ws)
    await ws.disconnect(timeout=15)

    conversation = await Conversation.objects.aget(pk=answer["done"]["conversation_id"])
    question, reply = [m async for m in Message.objects.filter(conversation=conversation).order_by("id")]
    assert conversation.language == "de"
    # The vector retrieval computed, stored without another embedder call (the same as embedding it now).
    expected = await sync_to_async(embed_search_query)("How long do I have to return boots?")
    assert question.question_embedding is not None
    assert [round(float(v), 5) for v in question.question_embedding] == [round(v, 5) for v in expected]
    assert reply.question_embedding is None
    assert reply.retrieval_score is not None and 0 < reply.retrieval_score <= 1


async def test_socket_without_lang_takes_the_visitors_language_from_the_handshake(llm_server) -> None:
    bot = await sync_to_async(make_chat_bot)(llm_server, model="fake?reply=Hallo.")
    ws = await connect(bot, accept_language="fr-FR,fr;q=0.9,en;q=0.5")
    await ws.receive_json_from()
    await ws.send_json_to({"type": "message", "text": "Bonjour"})
    answer = await collect_answer(ws)
    await ws.disconnect(timeout=15)
    conversation = await Conversation.objects.aget(pk=answer["done"]["conversation_id"])
    assert conversation.language == "fr"
