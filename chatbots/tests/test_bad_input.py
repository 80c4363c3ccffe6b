"""The bad-input matrix: every transport (chat socket, JSON chat, SSE, OpenAI-compatible, the REST APIs,
query strings and paths, uploads) answers NUL characters, lone surrogates, deep nesting, NaN, non-UUID
conversation ids and wrongly typed fields with a clear 400/404 or error frame, never a 500 or a dead
socket (config/input_rules.py holds the rule; issue 16, finding 5)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator

from accounts.tests.factories import make_organization
from chatbots.models import Bot, Conversation, Message
from chatbots.services import bot_create
from chatbots.tests.factories import make_api_key
from config.asgi import application
from config.input_rules import MAX_JSON_DEPTH
from knowledge.models import Chunk, FaqPair, Source, SourceStatus
from knowledge.services import source_ingest

pytestmark = pytest.mark.django_db(transaction=True)

BAD_TEXT = {"nul": "a\x00b", "lone-surrogate": "a\ud800b"}
TOO_DEEP = "[" * (MAX_JSON_DEPTH + 1) + "]" * (MAX_JSON_DEPTH + 1)
STACK_DEEP = "[" * 100_000 + "]" * 100_000  # deeper than Python's JSON parser can go
NOT_A_UUID = "not-a-uuid"


def dumps(value: Any) -> str:
    """JSON as a client sends it: a lone surrogate travels as its ``\\ud800`` escape."""
    return json.dumps(value)


@pytest.fixture
def bot(llm_server) -> Bot:
    return bot_create(
        organization=make_organization(name="Bad input Inc"),
        name="Helper",
        provider="custom",
        base_url=llm_server.base_url,
        model="fake?reply=Hello+there.",
    )


@pytest.fixture
def key(bot: Bot) -> str:
    return make_api_key(bot).key


def http_client(key: str | None = None) -> httpx.AsyncClient:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=application), base_url="http://testserver",
                             headers=headers, timeout=30)  # fmt: skip


async def post_raw(key: str, path: str, body: str, **headers: str) -> httpx.Response:
    async with http_client(key) as http:
        return await http.post(
            path, content=body.encode(), headers={"Content-Type": "application/json", **headers}
        )


def error_code(response: httpx.Response) -> str:
    assert response.headers["Content-Type"].startswith("application/json"), response.text[:200]
    return response.json()["error"]["code"]


# --- the chat socket ----------------------------------------------------------------------------------


async def open_socket(bot: Bot, query: str = "visitor=visitor-1") -> WebsocketCommunicator:
    ws = WebsocketCommunicator(
        application, f"/ws/chat/{bot.public_id}/?{query}", headers=[(b"host", b"testserver")]
    )
    connected, _ = await ws.connect()
    assert connected
    return ws


async def assert_error_then_still_usable(ws: WebsocketCommunicator, code: str, case: str = "") -> None:
    frame = await ws.receive_json_from(timeout=10)
    assert frame["type"] == "error" and frame["code"] == code, (case, frame)
    await ws.send_json_to({"type": "ping"})
    assert await ws.receive_json_from(timeout=10) == {"type": "pong"}, case


# Each test walks one transport's table of cases (a parametrized test per case would pay a database flush
# each); a failure names its case.

SOCKET_TEXT_PLACES = {
    "message-text": lambda bad: {"type": "message", "text": bad},
    "attribute-value": lambda bad: {"type": "message", "text": "hi", "attributes": {"plan": bad}},
    "attribute-key": lambda bad: {"type": "message", "text": "hi", "attributes": {bad: "pro"}},
    "feedback-comment": lambda bad: {"type": "feedback", "message_id": 1, "value": "down", "comment": bad},
    "frame-type": lambda bad: {"type": bad},
}

SOCKET_FRAMES = {
    "nested-too-deep": ('{"type": "message", "text": "hi", "attributes": {"a": ' + TOO_DEEP + "}}", "bad_input"),
    "nested-past-the-parser": ("[" * 8000 + "]" * 8000, "bad_input"),
    "nan-attribute": ('{"type": "message", "text": "hi", "attributes": {"score": NaN}}', "bad_input"),
    "infinity": ('{"type": "message", "text": "hi", "attributes": {"score": -Infinity}}', "bad_input"),
    "raw-lone-surrogate": ("\ud800", "bad_input"),
    "type-is-a-list": ('{"type": ["message"]}', "invalid_frame"),
    "type-is-an-object": ('{"type": {"message": 1}}', "invalid_frame"),
    "text-is-a-number": ('{"type": "message", "text": 5}', "invalid_message"),
    "feedback-value-is-an-object": ('{"type": "feedback", "message_id": 1, "value": {"up": true}}', "message_not_found"),
}  # fmt: skip


async def test_socket_answers_bad_text_with_an_error_frame_and_stays_open(bot) -> None:
    for place, frame in SOCKET_TEXT_PLACES.items():
        for name, bad in BAD_TEXT.items():
            ws = await open_socket(bot)
            assert (await ws.receive_json_from())["type"] == "ready"
            await ws.send_to(text_data=dumps(frame(bad)))
            await assert_error_then_still_usable(ws, "bad_input", f"{place}/{name}")
            await ws.disconnect()
    assert await Conversation.objects.acount() == 0


async def test_socket_answers_bad_frames_with_an_error_frame_and_stays_open(bot) -> None:
    for case, (raw, code) in SOCKET_FRAMES.items():
        ws = await open_socket(bot)
        await ws.receive_json_from()
        await ws.send_to(text_data=raw)
        await assert_error_then_still_usable(ws, code, case)
        await ws.disconnect()
    assert await Conversation.objects.acount() == 0


async def test_socket_answers_normally_after_a_run_of_bad_frames(bot) -> None:
    ws = await open_socket(bot)
    await ws.receive_json_from()
    for case, (raw, code) in SOCKET_FRAMES.items():
        await ws.send_to(text_data=raw)
        assert (await ws.receive_json_from(timeout=10))["code"] == code, case
    await ws.send_json_to({"type": "message", "text": "hello"})
    frames = []
    while (frame := await ws.receive_json_from(timeout=20))["type"] != "done":
        frames.append(frame)
    await ws.disconnect()
    assert frame["message_id"] and not [f for f in frames if f["type"] == "error"]
    assert "".join(f["text"] for f in frames if f["type"] == "delta")


async def test_socket_feedback_with_bad_types_is_refused_on_a_real_answer(bot) -> None:
    ws = await open_socket(bot)
    await ws.receive_json_from()
    await ws.send_json_to({"type": "message", "text": "hello"})
    while (frame := await ws.receive_json_from(timeout=20))["type"] != "done":
        pass
    message_id = frame["message_id"]
    for bad in ({"value": ["up"]}, {"value": "up", "comment": {"a": 1}}, {"value": "up", "comment": 5}):
        await ws.send_json_to({"type": "feedback", "message_id": message_id, **bad})
        await assert_error_then_still_usable(ws, "invalid_frame", str(bad))
    for name, bad_text in BAD_TEXT.items():
        feedback = {"type": "feedback", "message_id": message_id, "value": "up", "comment": bad_text}
        await ws.send_to(text_data=dumps(feedback))
        await assert_error_then_still_usable(ws, "bad_input", name)
    await ws.disconnect()
    assert (await Message.objects.aget(pk=message_id)).feedback == ""


SOCKET_QUERIES = {
    "conversation-not-a-uuid": (f"visitor=visitor-1&conversation={NOT_A_UUID}", "conversation_not_found", 4404),
    "conversation-too-long": ("visitor=visitor-1&conversation=" + "1" * 40, "conversation_not_found", 4404),
    "conversation-nul": ("visitor=visitor-1&conversation=%00", "bad_input", 4400),
    "visitor-nul": ("visitor=a%00b", "bad_input", 4400),
    "unknown-parameter-nul": ("visitor=visitor-1&x=%00", "bad_input", 4400),
}  # fmt: skip


async def test_socket_with_a_bad_query_string_is_refused_with_an_error_frame(bot) -> None:
    for case, (query, code, close_code) in SOCKET_QUERIES.items():
        ws = await open_socket(bot, query)
        frame = await ws.receive_json_from()
        assert frame["type"] == "error" and frame["code"] == code, case
        assert await ws.receive_output() == {"type": "websocket.close", "code": close_code}, case


# --- JSON chat and SSE ------------------------------------------------------------------------------------


def chat_bodies(bad: str) -> dict[str, dict[str, Any]]:
    return {
        "message": {"message": bad},
        "visitor-id": {"message": "hi", "visitor_id": bad},
        "conversation-id": {"message": "hi", "conversation_id": bad},
        "unknown-field": {"message": "hi", "note": bad},
        "key": {"message": "hi", bad: 1},
    }


CHAT_BODIES = {
    "nested-too-deep": ('{"message": "hi", "meta": ' + TOO_DEEP + "}", 400, "bad_input"),
    "nested-past-the-parser": (STACK_DEEP[:100_000], 400, "bad_input"),
    "nan": ('{"message": "hi", "temperature": NaN}', 400, "bad_input"),
    "not-utf8": (b'{"message": "caf\xe9"}', 400, "bad_input"),
    "conversation-not-a-uuid": (dumps({"message": "hi", "conversation_id": NOT_A_UUID}), 404, "conversation_not_found"),
    "conversation-is-a-number": (dumps({"message": "hi", "conversation_id": 5}), 400, "invalid_message"),
    "conversation-is-a-list": (dumps({"message": "hi", "conversation_id": ["x"]}), 400, "invalid_message"),
    "message-is-an-object": (dumps({"message": {"text": "hi"}}), 400, "invalid_message"),
    "visitor-is-a-number": (dumps({"message": "hi", "visitor_id": 5}), 400, "invalid_message"),
    "stream-is-a-string": (dumps({"message": "hi", "stream": "yes"}), 400, "invalid_message"),
    "body-is-a-list": ("[]", 400, "invalid_message"),
}  # fmt: skip


async def test_chat_json_and_sse_refuse_bad_text_with_a_400(bot, key) -> None:
    path = f"/api/v1/bots/{bot.public_id}/messages"
    for stream, accept in ((False, "application/json"), (True, "text/event-stream")):
        for place in chat_bodies(""):
            for name, bad in BAD_TEXT.items():
                body = dumps({**chat_bodies(bad)[place], "stream": stream})
                response = await post_raw(key, path, body, Accept=accept)
                case = f"stream={stream}/{place}/{name}"
                assert response.status_code == 400, case
                assert error_code(response) == "bad_input", case
    assert await Message.objects.acount() == 0


async def test_chat_json_and_sse_refuse_bad_bodies_with_a_clear_error(bot, key) -> None:
    path = f"/api/v1/bots/{bot.public_id}/messages"
    async with http_client(key) as http:
        for accept in ("application/json", "text/event-stream"):
            for case, (raw, status, code) in CHAT_BODIES.items():
                response = await http.post(path, content=raw,
                                           headers={"Content-Type": "application/json", "Accept": accept})  # fmt: skip
                assert (response.status_code, error_code(response)) == (status, code), (accept, case)


# --- OpenAI-compatible chat completions ---------------------------------------------------------------


def openai_body(bot: Bot, **fields: Any) -> dict[str, Any]:
    return {"model": bot.public_id, "messages": [{"role": "user", "content": "hi"}], **fields}


def assert_openai_400(response: httpx.Response, code: str, case: str) -> None:
    assert response.status_code == 400, (case, response.text[:300])
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and error["code"] == code and error["message"], case


OPENAI_WRONG_TYPES = {
    "stream-yes": {"stream": "yes"},
    "stream-one": {"stream": 1},
    "messages-object": {"messages": {}},
    "messages-string": {"messages": "hi"},
    "model-number": {"model": 5},
    "temperature-hot": {"temperature": "hot"},
    "temperature-true": {"temperature": True},
    "top-p-list": {"top_p": [1]},
    "max-tokens-float": {"max_tokens": 1.5},
    "user-number": {"user": 5},
    "stream-options-number": {"stream": True, "stream_options": 5},
    "include-usage-string": {"stream": True, "stream_options": {"include_usage": "yes"}},
    "role-number": {"messages": [{"role": 5, "content": "hi"}]},
    "content-number": {"messages": [{"role": "user", "content": 5}]},
    "content-part-text-number": {"messages": [{"role": "user", "content": [{"type": "text", "text": 5}]}]},
    "message-not-an-object": {"messages": ["hi"]},
}


def openai_bad_text(bad: str) -> dict[str, dict[str, Any]]:
    return {
        "content": {"messages": [{"role": "user", "content": bad}]},
        "content-part": {"messages": [{"role": "user", "content": [{"type": "text", "text": bad}]}]},
        "model": {"model": bad},
        "user": {"user": bad},
        "system": {"messages": [{"role": "system", "content": bad}, {"role": "user", "content": "hi"}]},
    }


async def test_openai_wrongly_typed_fields_get_an_openai_shaped_400(bot, key) -> None:
    for case, fields in OPENAI_WRONG_TYPES.items():
        response = await post_raw(key, "/v1/chat/completions", dumps(openai_body(bot, **fields)))
        assert_openai_400(response, "invalid_message", case)
    assert await Message.objects.acount() == 0


async def test_openai_bad_text_and_bad_json_get_an_openai_shaped_400(bot, key) -> None:
    for name, bad in BAD_TEXT.items():
        for place, fields in openai_bad_text(bad).items():
            response = await post_raw(key, "/v1/chat/completions", dumps(openai_body(bot, **fields)))
            assert_openai_400(response, "bad_input", f"{place}/{name}")
    for case, raw in {"deep": TOO_DEEP, "deeper": STACK_DEEP[:100_000], "nan": '{"model": NaN}'}.items():
        assert_openai_400(await post_raw(key, "/v1/chat/completions", raw), "bad_input", case)
    assert await Message.objects.acount() == 0


async def test_openai_well_typed_optional_fields_are_still_accepted(bot, key) -> None:
    body = openai_body(bot, stream=False, temperature=0.2, top_p=1, max_tokens=50, n=1, user="u-1", stop=["x"],
                       stream_options=None, seed=None)  # fmt: skip
    response = await post_raw(key, "/v1/chat/completions", dumps(body))
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["message"]["content"]


# --- the REST APIs (DRF): bodies, paths and query strings -----------------------------------------------


def api_requests(bot: Bot, bad: str) -> dict[str, tuple[str, str, Any]]:
    """(method, path, JSON body) per place where the REST API reads text."""
    return {
        "feedback-comment": ("POST", "/api/v1/messages/1/feedback",
                             {"conversation_id": "3f1c6a2e-0000-4000-8000-000000000000", "value": "up", "comment": bad}),
        "source-text": ("POST", "/api/v1/sources/", {"kind": "text", "title": "T", "text": bad}),
        "source-title": ("POST", "/api/v1/sources/", {"kind": "text", "title": bad, "text": "Boots."}),
        "source-faq": ("POST", "/api/v1/sources/", {"kind": "faq", "title": "T", "faq_pairs": [{"question": bad, "answer": "A"}]}),
        "source-bots": ("POST", "/api/v1/sources/", {"kind": "text", "title": "T", "text": "Boots.", "bots": [bad]}),
        "bot-name": ("POST", "/api/v1/bots/", {"name": bad}),
        "bot-prompt": ("PATCH", f"/api/v1/bots/{bot.public_id}/", {"system_prompt": bad}),
        "body-key": ("PATCH", f"/api/v1/bots/{bot.public_id}/", {bad: "x"}),
    }  # fmt: skip


async def test_rest_api_refuses_bad_text_and_bad_json_in_bodies_with_a_400(bot, key) -> None:
    async with http_client(key) as http:
        for name, bad in BAD_TEXT.items():
            for place, (method, path, body) in api_requests(bot, bad).items():
                response = await http.request(method, path, content=dumps(body),
                                              headers={"Content-Type": "application/json"})  # fmt: skip
                assert response.status_code == 400, f"{place}/{name}"
                assert error_code(response) == "bad_input", f"{place}/{name}"
    for path in ("/api/v1/bots/", "/api/v1/sources/", "/api/v1/messages/1/feedback"):
        for case, raw in {"deep": TOO_DEEP, "deeper": STACK_DEEP, "nan": '{"name": NaN}'}.items():
            response = await post_raw(key, path, raw)
            assert (response.status_code, error_code(response)) == (400, "bad_input"), (path, case)
    assert await Source.objects.acount() == 0 and await Bot.objects.acount() == 1


NUL_URLS = [
    "/api/v1/sources/?kind={bad}",
    "/api/v1/sources/?bot={bad}",
    "/api/v1/sources/?page={bad}",
    "/api/v1/bots/?{bad}=1",
    "/api/v1/bots/{bad}/",
    "/api/v1/bots/{bad}/messages",
    "/api/v1/api-keys/{bad}/revoke/",
    "/v1/chat/completions?{bad}",
    "/widget/{bad}/config.json",
    "/widget/{bad}/",
    "/chat/{bad}/",
    "/widget/{public_id}/?host={bad}",
    "/chat/{public_id}/?preview={bad}",
    "/admin/login/?next={bad}",
]


async def test_paths_and_query_strings_with_nul_get_a_400(bot, key) -> None:
    async with http_client(key) as http:
        for template in NUL_URLS:
            for bad in ("%00", "a%00b"):
                url = template.format(bad=bad, public_id=bot.public_id)
                for method in ("GET", "POST"):
                    response = await http.request(method, url)
                    assert response.status_code == 400, (method, url)
                    assert error_code(response) == "bad_input", (method, url)


async def test_conversation_ids_that_are_not_uuids_are_client_errors(key) -> None:
    async with http_client(key) as http:
        for path in (f"/api/v1/conversations/{NOT_A_UUID}/messages", "/api/v1/conversations/%00/messages"):
            assert (await http.get(path)).status_code in (400, 404), path
    response = await post_raw(
        key, "/api/v1/messages/1/feedback", dumps({"conversation_id": NOT_A_UUID, "value": "up"})
    )
    assert response.status_code == 400


# --- uploads -----------------------------------------------------------------------------------------------


async def test_form_and_multipart_fields_with_nul_get_a_400(key, settings, tmp_path) -> None:
    # (A lone surrogate cannot reach a form field: Django decodes invalid UTF-8 there as U+FFFD.)
    settings.MEDIA_ROOT = tmp_path
    async with http_client(key) as http:
        upload = await http.post("/api/v1/sources/", data={"kind": "file", "title": "a\x00b"},
                                 files={"file": ("a.txt", b"Boots.", "text/plain")})  # fmt: skip
        form = await http.post("/api/v1/bots/", data={"name": "a\x00b"})
    for response in (upload, form):
        assert response.status_code == 400
        assert error_code(response) == "bad_input"
    assert await Source.objects.acount() == 0


def post_file(key: str, fields: dict[str, str], files: dict[str, tuple[str, bytes, str]]) -> dict:
    async def send() -> httpx.Response:
        async with http_client(key) as http:
            return await http.post("/api/v1/sources/", data=fields, files=files)

    response = async_to_sync(send)()
    assert response.status_code == 201, response.text
    return response.json()


def test_uploads_with_nul_after_the_first_8_kb_are_ingested_without_it(key, settings, tmp_path) -> None:
    settings.MEDIA_ROOT = tmp_path
    filler = "Boots can be returned within thirty days of delivery. " * 200  # past the 8 KB sniffed
    for name, content in {
        "guide.txt": f"{filler}\nShipping\x00 takes three days.\n",
        "guide.md": f"# Returns\n\n{filler}\n\n# Shipping\n\nShipping\x00 takes three days.\n",
        "guide.csv": f"topic,answer\nreturns,{filler}\nshipping,Shipping\x00 takes three days.\n",
        "guide.html": f"<h1>Returns</h1><p>{filler}</p><h2>Shipping</h2><p>Shipping\x00 takes three days.</p>",
    }.items():
        created = post_file(
            key, {"kind": "file", "title": name}, {"file": (name, content.encode(), "text/plain")}
        )
        source = source_ingest(source_id=created["id"])
        assert source.status == SourceStatus.READY, (name, source.status_reason)
        contents = "\n".join(Chunk.objects.filter(source=source).values_list("content", flat=True))
        assert "\x00" not in contents and "takes three days." in contents, name


def test_faq_csv_upload_with_nul_is_stored_without_it(key, settings, tmp_path) -> None:
    settings.MEDIA_ROOT = tmp_path
    csv = b"question,answer\nDo you\x00 ship?,Yes.\n"
    post_file(key, {"kind": "faq", "title": "FAQ"}, {"faq_csv": ("faq.csv", csv, "text/csv")})
    assert list(FaqPair.objects.values_list("question", flat=True)) == ["Do you ship?"]
