"""Real third-party clients against a live Parlor (a Daphne process): the official ``openai`` SDK (sync and
async, streamed and not, chat completions and the Responses API), LangChain's ``ChatOpenAI`` and the ``llm``
CLI, as a new API user would use them. The model behind the bots is the local fake OpenAI server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import openai
import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from langchain_openai import ChatOpenAI

from chatbots.llm.testserver import FakeLLMServer
from chatbots.models import Bot, Message, MessageRole, MessageStatus
from chatbots.testing import LiveParlor
from chatbots.tests.factories import make_api_key, make_chat_bot, scripted

pytestmark = [pytest.mark.slow_process, pytest.mark.django_db(transaction=True)]
QUESTION = "How long do I have to return boots?"
REPLY = "Boots can be returned within 30 days of delivery [1]."


@pytest.fixture
def parlor(live_parlor: LiveParlor, llm_server: FakeLLMServer) -> tuple[str, Bot, str]:
    """(base URL of the live /v1 API, a bot answering REPLY, a full API key for it). The answer cache is
    off: these tests check what the model was sent and what it reported (the cache has tests of its own)."""
    bot = make_chat_bot(
        llm_server, model=scripted("parlor-test", reply=REPLY.replace(" ", "+")), answer_cache_enabled=False
    )
    return f"{live_parlor.url}/v1", bot, make_api_key(bot).key


def sync_client(parlor: tuple[str, Bot, str]) -> openai.OpenAI:
    base_url, _bot, key = parlor
    return openai.OpenAI(base_url=base_url, api_key=key, max_retries=0, timeout=30)


def last_model_request(llm_server: FakeLLMServer):  # type: ignore[no-untyped-def]
    return [r for r in llm_server.requests if r.path.endswith("/chat/completions")][-1]


def test_openai_sdk_lists_the_keys_bots_as_models(parlor, llm_server) -> None:
    _base, bot, _key = parlor
    other_org_bot = make_chat_bot(llm_server, name="Someone else's")
    client = sync_client(parlor)
    ids = [model.id for model in client.models.list()]
    assert ids == [bot.public_id]
    assert client.models.retrieve(bot.public_id).owned_by == bot.organization.slug
    with pytest.raises(openai.NotFoundError) as missing:
        client.models.retrieve(other_org_bot.public_id)
    assert missing.value.code == "model_not_found"


def test_openai_sdk_sync_chat_plain_and_streamed(parlor, llm_server) -> None:
    _base, bot, _key = parlor
    client = sync_client(parlor)
    completion = client.chat.completions.create(
        model=bot.public_id, messages=[{"role": "user", "content": QUESTION}]
    )
    assert completion.choices[0].message.content == REPLY
    assert completion.choices[0].finish_reason == "stop"
    assert (
        completion.usage.total_tokens
        == completion.usage.prompt_tokens + completion.usage.completion_tokens
        > 0
    )

    pieces, finish, usage = [], None, None
    for chunk in client.chat.completions.create(
        model=bot.public_id, messages=[{"role": "user", "content": QUESTION}], stream=True,
        stream_options={"include_usage": True},
    ):  # fmt: skip
        for choice in chunk.choices:
            pieces.append(choice.delta.content or "")
            finish = choice.finish_reason or finish
        usage = chunk.usage or usage
    assert "".join(pieces) == REPLY and finish == "stop" and usage.completion_tokens > 0


async def test_openai_sdk_async_chat_plain_and_streamed(parlor) -> None:
    base_url, bot, key = parlor
    client = openai.AsyncOpenAI(base_url=base_url, api_key=key, max_retries=0, timeout=30)
    completion = await client.chat.completions.create(
        model=bot.public_id, messages=[{"role": "user", "content": QUESTION}]
    )
    assert completion.choices[0].message.content == REPLY
    stream = await client.chat.completions.create(
        model=bot.public_id, messages=[{"role": "user", "content": QUESTION}], stream=True
    )
    assert "".join([c.choices[0].delta.content or "" async for c in stream if c.choices]) == REPLY
    await client.close()


@pytest.mark.parametrize(
    ("parameter", "extra"),
    [
        ("tools", {"tools": [{"type": "function", "function": {"name": "lookup", "parameters": {}}}]}),
        ("n", {"n": 2}),
        ("response_format", {"response_format": {"type": "json_object"}}),
        ("logprobs", {"logprobs": True}),
        ("top_p", {"top_p": 0.5}),
        ("seed", {"seed": 7}),
        ("made_up", {"extra_body": {"made_up": 1}}),
    ],
)
def test_unsupported_parameters_are_refused_by_name_in_openais_shape(parlor, parameter, extra) -> None:
    _base, bot, _key = parlor
    with pytest.raises(openai.BadRequestError) as refused:
        sync_client(parlor).chat.completions.create(
            model=bot.public_id, messages=[{"role": "user", "content": QUESTION}], **extra
        )
    assert refused.value.code == "unsupported_parameter" and refused.value.param == parameter
    assert parameter in refused.value.message
    assert not Message.objects.exists()


def test_temperature_output_limit_and_stop_reach_the_model_within_the_bots_limits(parlor, llm_server) -> None:
    _base, bot, _key = parlor
    client = sync_client(parlor)
    question = [{"role": "user", "content": QUESTION}]
    limited = client.chat.completions.create(
        model=bot.public_id, messages=question, max_tokens=3, temperature=0.9
    )
    sent = last_model_request(llm_server).params
    assert sent["temperature"] == 0.9 and sent["max_tokens"] == 3
    assert limited.choices[0].finish_reason == "length"
    assert limited.choices[0].message.content == " ".join(REPLY.split()[:3])

    # A client asks for more than the bot allows: the bot's limit applies.
    client.chat.completions.create(model=bot.public_id, messages=question, max_completion_tokens=10**6)
    assert last_model_request(llm_server).params["max_tokens"] == bot.max_output_tokens

    stopped = client.chat.completions.create(model=bot.public_id, messages=question, stop=["30 days"])
    assert last_model_request(llm_server).params["stop"] == ["30 days"]
    assert stopped.choices[0].finish_reason == "stop"
    assert stopped.choices[0].message.content == REPLY.split("30 days")[0]


def test_an_interrupted_answer_is_not_reported_as_the_token_limit(parlor, llm_server) -> None:
    _base, bot, _key = parlor
    Bot.objects.filter(pk=bot.pk).update(model=scripted("parlor-test", words=40, break_after=5))
    client = sync_client(parlor)
    completion = client.chat.completions.create(
        model=bot.public_id, messages=[{"role": "user", "content": QUESTION}]
    )
    assert completion.choices[0].finish_reason == "error"
    assert completion.choices[0].message.content  # the part that was answered
    finishes = [
        c.choices[0].finish_reason
        for c in client.chat.completions.create(
            model=bot.public_id, messages=[{"role": "user", "content": QUESTION}], stream=True
        )
        if c.choices and c.choices[0].finish_reason
    ]
    assert finishes == ["error"]
    assert set(Message.objects.filter(role=MessageRole.ASSISTANT).values_list("status", flat=True)) == {
        MessageStatus.INCOMPLETE
    }


def test_client_system_message_is_appended_to_the_bots_instructions_or_refused(parlor, llm_server) -> None:
    _base, bot, _key = parlor
    client = sync_client(parlor)
    messages = [{"role": "system", "content": "Answer like a pirate."}, {"role": "user", "content": QUESTION}]
    client.chat.completions.create(model=bot.public_id, messages=messages)
    system = last_model_request(llm_server).messages[0]
    assert system["role"] == "system"
    assert system["content"].startswith(bot.system_prompt) and "Answer like a pirate." in system["content"]

    Bot.objects.filter(pk=bot.pk).update(api_system_messages="refuse")
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(model=bot.public_id, messages=messages)
    assert refused.value.code == "system_message_refused" and refused.value.param == "messages"


def test_tool_call_turns_in_the_history_are_accepted(parlor, llm_server) -> None:
    _base, bot, _key = parlor
    history = [
        {"role": "user", "content": "What's the weather?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "Sunny"},
        {"role": "assistant", "content": "It is sunny."},
        {"role": "user", "content": QUESTION},
    ]  # fmt: skip
    completion = sync_client(parlor).chat.completions.create(model=bot.public_id, messages=history)
    assert completion.choices[0].message.content == REPLY
    sent = last_model_request(llm_server).messages
    assert {"role": "assistant", "content": "It is sunny."} in sent
    assert not any(m["role"] == "tool" or "tool_calls" in m for m in sent)


def test_responses_api_text_in_and_out_plain_and_streamed(parlor, llm_server) -> None:
    _base, bot, _key = parlor
    client = sync_client(parlor)
    response = client.responses.create(model=bot.public_id, input=QUESTION, instructions="Be brief.")
    assert response.status == "completed" and response.output_text == REPLY
    assert response.usage.output_tokens > 0
    assert "Be brief." in last_model_request(llm_server).messages[0]["content"]

    events = list(client.responses.create(model=bot.public_id, input=QUESTION, stream=True))
    kinds = [event.type for event in events]
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == REPLY
    assert events[-1].response.output_text == REPLY
    assert [e.sequence_number for e in events] == list(range(1, len(events) + 1))

    with client.responses.stream(
        model=bot.public_id, input=[{"role": "user", "content": QUESTION}]
    ) as stream:
        final = stream.get_final_response()
    assert final.output_text == REPLY

    cut = client.responses.create(model=bot.public_id, input=QUESTION, max_output_tokens=2)
    assert cut.status == "incomplete" and cut.incomplete_details.reason == "max_output_tokens"
    with pytest.raises(openai.BadRequestError) as refused:
        client.responses.create(model=bot.public_id, input=QUESTION, previous_response_id=response.id)
    assert refused.value.param == "previous_response_id"


async def test_async_responses_api_streams(parlor) -> None:
    base_url, bot, key = parlor
    client = openai.AsyncOpenAI(base_url=base_url, api_key=key, max_retries=0, timeout=30)
    stream = await client.responses.create(model=bot.public_id, input=QUESTION, stream=True)
    deltas = [event.delta async for event in stream if event.type == "response.output_text.delta"]
    assert "".join(deltas) == REPLY
    await client.close()


def test_errors_under_v1_are_json_in_openais_shape(parlor) -> None:
    base_url, _bot, key = parlor
    headers = {"Authorization": f"Bearer {key}"}
    unknown = httpx.post(f"{base_url}/embeddings", headers=headers, json={"input": "x"})
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "unknown_url"
    wrong_method = httpx.get(f"{base_url}/chat/completions", headers=headers)
    assert wrong_method.status_code == 405 and wrong_method.json()["error"]["type"] == "invalid_request_error"
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=base_url, api_key="prl_wrong", max_retries=0).models.list()
    with pytest.raises(openai.NotFoundError) as missing:
        sync_client(parlor).chat.completions.create(
            model="bot_nope", messages=[{"role": "user", "content": "Hi"}]
        )
    assert missing.value.code == "model_not_found"


async def test_langchain_chat_openai_invokes_streams_and_runs_async(parlor) -> None:
    base_url, bot, key = parlor
    chat = ChatOpenAI(model=bot.public_id, base_url=base_url, api_key=key, max_retries=0, temperature=0.3)
    messages = [
        SystemMessage("You are concise."),
        HumanMessage("Hi"),
        AIMessage("Hello!"),
        HumanMessage(QUESTION),
    ]
    answer = await chat.ainvoke(messages)
    assert answer.content == REPLY and answer.response_metadata["finish_reason"] == "stop"
    streamed = "".join([chunk.content async for chunk in chat.astream(QUESTION)])
    assert streamed == REPLY
    limited = await ChatOpenAI(
        model=bot.public_id, base_url=base_url, api_key=key, max_retries=0, max_tokens=2
    ).ainvoke(QUESTION)
    assert limited.response_metadata["finish_reason"] == "length"
    sync_answer = chat.invoke(QUESTION)
    assert sync_answer.content == REPLY


def test_llm_cli_chat_and_responses_models(parlor, tmp_path: Path) -> None:
    base_url, bot, key = parlor
    models = [{"model_id": "parlor", "model_name": bot.public_id, "api_base": base_url, "api_key_name": "parlor"},
              {"model_id": "parlor-responses", "model_name": bot.public_id, "api_base": base_url, "api_key_name": "parlor", "responses": True}]  # fmt: skip
    (tmp_path / "extra-openai-models.yaml").write_text(json.dumps(models))  # JSON is YAML
    env = {**os.environ, "LLM_USER_PATH": str(tmp_path)}
    cli = str(Path(sys.executable).with_name("llm"))

    def run(*args: str) -> str:
        done = subprocess.run([cli, *args, "--key", key, QUESTION], env=env, capture_output=True, text=True,
                              timeout=60)  # fmt: skip
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    assert run("-m", "parlor") == REPLY
    assert run("-m", "parlor", "--no-stream", "-o", "temperature", "0.5") == REPLY
    assert run("-m", "parlor", "-s", "Be brief.") == REPLY
    assert run("-m", "parlor-responses") == REPLY
    assert run("-m", "parlor-responses", "--no-stream") == REPLY
