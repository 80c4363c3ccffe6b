"""JSON, Server-Sent Events and OpenAI-compatible transports, through the real ASGI application."""

from __future__ import annotations

import json

import httpx
import openai
import pytest
from asgiref.sync import sync_to_async

from chatbots.models import Bot, Conversation, Message, MessageRole, MessageStatus
from chatbots.tests.factories import make_api_key, make_chat_bot
from config.asgi import application

pytestmark = pytest.mark.django_db(transaction=True)
QUESTION = "How long do I have to return boots?"
REPLY = "Boots can be returned within 30 days [1]."
MODEL = "fake?reply=" + REPLY.replace(" ", "+")


def client(key: str | None = None) -> httpx.AsyncClient:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=application), base_url="http://testserver",
                             headers=headers, timeout=30)  # fmt: skip


async def setup_bot(llm_server, **fields):
    bot = await sync_to_async(make_chat_bot)(llm_server, model=MODEL, **fields)
    issued = await sync_to_async(make_api_key)(bot)
    return bot, issued.key


def parse_sse(body: str) -> list[tuple[str, dict]]:
    events = []
    for block in body.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines())
        events.append((lines["event"], json.loads(lines["data"])))
    return events


async def test_json_answer_with_sources_and_stored_conversation(llm_server) -> None:
    bot, key = await setup_bot(llm_server)
    async with client(key) as http:
        response = await http.post(f"/api/v1/bots/{bot.public_id}/messages", json={"message": QUESTION})
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["answer"] == REPLY and body["incomplete"] is False
        assert body["sources"][0]["title"] == "Returns and shipping"
        assert body["usage"]["completion_tokens"] > 0
        assert response.headers["x-parlor-conversation-id"] == body["conversation_id"]
        # Continue the conversation, then read it back.
        follow = await http.post(
            f"/api/v1/bots/{bot.public_id}/messages",
            json={"message": "And shipping?", "conversation_id": body["conversation_id"]},
        )
        assert follow.json()["conversation_id"] == body["conversation_id"]
        listing = await http.get(f"/api/v1/conversations/{body['conversation_id']}/messages")
        assert listing.status_code == 200
        assert [m["text"] for m in listing.json()["results"]] == [QUESTION, REPLY, "And shipping?", REPLY]
        feedback = await http.post(
            f"/api/v1/messages/{body['message_id']}/feedback",
            json={"conversation_id": body["conversation_id"], "value": "down", "comment": "too short"},
        )
        assert feedback.status_code == 200 and feedback.json()["feedback"] == "down"
    conversation = await Conversation.objects.aget(pk=body["conversation_id"])
    assert conversation.channel == "api"
    reply = await Message.objects.aget(pk=body["message_id"])
    assert (reply.feedback, reply.feedback_comment) == ("down", "too short")


async def test_sse_stream_carries_the_same_answer(llm_server) -> None:
    bot, key = await setup_bot(llm_server)
    async with client(key) as http:
        response = await http.post(
            f"/api/v1/bots/{bot.public_id}/messages", json={"message": QUESTION, "stream": True}
        )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["x-accel-buffering"] == "no" and "no-cache" in response.headers["cache-control"]
    events = parse_sse(response.text)
    names = [name for name, _ in events]
    assert names[0] == "accepted" and names[-2:] == ["sources", "done"] and "delta" in names
    assert "".join(data["text"] for name, data in events if name == "delta") == REPLY
    done = events[-1][1]
    assert (await Message.objects.aget(pk=done["message_id"])).text == REPLY
    # The conversation is named before the first token: in a header and in the first event.
    assert (
        response.headers["x-parlor-conversation-id"]
        == events[0][1]["conversation_id"]
        == done["conversation_id"]
    )


async def test_openai_sdk_gets_a_grounded_answer(llm_server) -> None:
    bot, key = await setup_bot(llm_server)
    sdk = openai.AsyncOpenAI(base_url="http://testserver/v1", api_key=key, http_client=client())
    completion = await sdk.chat.completions.create(
        model=bot.public_id, messages=[{"role": "user", "content": QUESTION}]
    )
    assert completion.choices[0].message.content == REPLY
    assert completion.choices[0].finish_reason == "stop" and completion.usage.completion_tokens > 0
    assert completion.model_extra["sources"][0]["title"] == "Returns and shipping"
    async with client(key) as http:  # the answer can be rated like any other
        rated = await http.post(
            f"/api/v1/messages/{completion.model_extra['parlor_message_id']}/feedback",
            json={"conversation_id": completion.model_extra["parlor_conversation_id"], "value": "up"},
        )
    assert rated.status_code == 200 and rated.json()["feedback"] == "up"

    stream = await sdk.chat.completions.create(
        model=bot.public_id,
        messages=[{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"},
                  {"role": "user", "content": QUESTION}],
        stream=True, stream_options={"include_usage": True},
    )  # fmt: skip
    pieces, usage, message_ids = [], None, []
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            pieces.append(chunk.choices[0].delta.content)
        if chunk.usage:
            usage = chunk.usage
        if (chunk.model_extra or {}).get("parlor_message_id"):
            message_ids.append(chunk.model_extra["parlor_message_id"])
    assert "".join(pieces) == REPLY and usage.completion_tokens > 0
    assert len(message_ids) == 1 and (await Message.objects.aget(pk=message_ids[0])).text == REPLY
    stored = await Message.objects.aget(pk=message_ids[0])
    assert stream.response.headers["x-parlor-conversation-id"] == str(stored.conversation_id)
    # The client's history reached the model.
    assert {"role": "assistant", "content": "Hello!"} in llm_server.requests[-1].messages
    await sdk.close()

    with pytest.raises(openai.AuthenticationError):
        bad = openai.AsyncOpenAI(base_url="http://testserver/v1", api_key="pk_wrong", http_client=client())
        await bad.chat.completions.create(model=bot.public_id, messages=[{"role": "user", "content": "x"}])


async def test_bad_input_gets_clear_errors(llm_server, settings) -> None:
    bot, key = await setup_bot(llm_server)
    url = f"/api/v1/bots/{bot.public_id}/messages"
    async with client(key) as http:
        assert (await http.post(url, content=b"{nope")).json()["error"]["code"] == "invalid_message"
        assert (await http.post(url, json={"message": ""})).status_code == 400
        too_long = await http.post(url, json={"message": "x" * (settings.CHAT_MAX_MESSAGE_CHARS + 1)})
        assert too_long.status_code == 413 and too_long.json()["error"]["code"] == "message_too_long"
        missing = await http.post("/v1/chat/completions", json={"model": bot.public_id, "messages": []})
        assert missing.status_code == 400 and "messages" in missing.json()["error"]["message"]
    async with client() as anonymous:
        response = await anonymous.post(url, json={"message": "hi"})
        assert response.status_code == 401 and response.json()["error"]["code"] == "not_authenticated"
    assert await Message.objects.acount() == 0


async def test_rate_limited_api_key_gets_429_with_retry_after_and_message_is_kept(
    llm_server, settings
) -> None:
    settings.CHAT_RATE_LIMIT_API_KEY = "1/min"
    bot, key = await setup_bot(llm_server)
    url = f"/api/v1/bots/{bot.public_id}/messages"
    async with client(key) as http:
        assert (await http.post(url, json={"message": "first"})).status_code == 200
        refused = await http.post(url, json={"message": "second"})
    assert refused.status_code == 429 and 1 <= int(refused.headers["retry-after"]) <= 60
    assert refused.json()["error"]["code"] == "rate_limited"
    kept = await Message.objects.aget(text="second")
    assert kept.status == MessageStatus.FAILED and kept.error_code == "rate_limited"


async def test_other_tenants_key_reaches_neither_bot_nor_conversation(llm_server) -> None:
    bot, key = await setup_bot(llm_server, name="Ours")
    _other_bot, other_key = await setup_bot(llm_server, name="Theirs")
    async with client(key) as http:
        answer = (
            await http.post(f"/api/v1/bots/{bot.public_id}/messages", json={"message": QUESTION})
        ).json()
    before = await Message.objects.acount()
    async with client(other_key) as intruder:
        assert (
            await intruder.post(f"/api/v1/bots/{bot.public_id}/messages", json={"message": "hi"})
        ).status_code == 404
        listing = await intruder.get(f"/api/v1/conversations/{answer['conversation_id']}/messages")
        assert listing.status_code == 404 and QUESTION not in listing.text
        feedback = await intruder.post(
            f"/api/v1/messages/{answer['message_id']}/feedback",
            json={"conversation_id": answer["conversation_id"], "value": "down"},
        )
        assert feedback.status_code == 404
        completion = await intruder.post(
            "/v1/chat/completions",
            json={"model": bot.public_id, "messages": [{"role": "user", "content": "hi"}]},
        )
        assert completion.status_code == 404
    assert await Message.objects.acount() == before
    assert (await Message.objects.aget(pk=answer["message_id"])).feedback == ""


async def test_key_limited_to_other_bots_or_read_only_cannot_chat(llm_server) -> None:
    bot, _ = await setup_bot(llm_server)
    other = await Bot.objects.acreate(organization_id=bot.organization_id, name="Other")
    limited = await sync_to_async(make_api_key)(bot, bots=[other])
    read_only = await sync_to_async(make_api_key)(bot, read_only=True)
    url = f"/api/v1/bots/{bot.public_id}/messages"
    async with client(limited.key) as http:
        assert (await http.post(url, json={"message": "hi"})).status_code == 403
    async with client(read_only.key) as http:
        response = await http.post(url, json={"message": "hi"})
        assert response.status_code == 403 and "read-only" in response.json()["error"]["message"]
        feedback = await http.post(
            "/api/v1/messages/1/feedback", json={"conversation_id": str(bot.pk), "value": "up"}
        )
        assert feedback.status_code == 403
    assert not await Message.objects.filter(role=MessageRole.USER).aexists()


async def test_every_transport_gives_the_same_grounded_answer_with_the_same_sources(llm_server) -> None:
    """As a new API user would try them: WebSocket, JSON, Server-Sent Events, OpenAI-compatible."""
    from chatbots.testing import collect_answer, connect

    # Without the answer cache: the same first question must reach the model through every transport.
    bot, key = await setup_bot(llm_server, answer_cache_enabled=False)
    asked_before = len(llm_server.requests)
    socket = await connect(bot)
    await socket.receive_json_from(timeout=10)  # ready
    await socket.send_json_to({"type": "message", "text": QUESTION})
    over_socket = await collect_answer(socket)
    await socket.disconnect()
    async with client(key) as http:
        url = f"/api/v1/bots/{bot.public_id}/messages"
        as_json = (await http.post(url, json={"message": QUESTION})).json()
        events = parse_sse((await http.post(url, json={"message": QUESTION, "stream": True})).text)
    sdk = openai.AsyncOpenAI(base_url="http://testserver/v1", api_key=key, http_client=client())
    completion = await sdk.chat.completions.create(
        model=bot.public_id, messages=[{"role": "user", "content": QUESTION}]
    )
    await sdk.close()

    answers = {
        "websocket": (over_socket["text"], over_socket["sources"]),
        "json": (as_json["answer"], as_json["sources"]),
        "sse": ("".join(d["text"] for name, d in events if name == "delta"),
                next(d["sources"] for name, d in events if name == "sources")),
        "openai": (completion.choices[0].message.content, completion.model_extra["sources"]),
    }  # fmt: skip
    assert all(text == REPLY for text, _ in answers.values()), answers
    sources = [source_list for _, source_list in answers.values()]
    assert sources[0] and sources[0][0]["title"] == "Returns and shipping"
    assert all(source_list == sources[0] for source_list in sources), answers
    # the passages the answer is grounded in reached the model every time
    prompts = [json.dumps(r.messages) for r in llm_server.requests[asked_before:]]
    assert len(prompts) == 4 and all("30 days" in prompt for prompt in prompts)
