"""The provider layer against the local OpenAI-compatible server, through the real openai SDK."""

from __future__ import annotations

import asyncio
import logging
from decimal import Decimal

import pytest

from chatbots.llm import Completed, TextDelta, endpoints_for, stream_chat
from chatbots.llm.endpoints import Endpoint, get_client
from chatbots.llm.offline import NOTICE, NOTICE_AFTER_FAILURE
from chatbots.llm.pricing import estimate_cost
from chatbots.llm.testserver import FakeLLMServer
from chatbots.models import Bot
from chatbots.tests.factories import SERVER_KEY, fake_bot, scripted
from knowledge.retrieval import RetrievedChunk

pytestmark = pytest.mark.usefixtures("fast_llm_settings")

QUESTION = [{"role": "user", "content": "What are your opening hours?"}]
PASSAGES = [
    RetrievedChunk(
        chunk_id=1, source_id=7, source_title="Store guide", url="https://example.com/guide", page=2,
        content="Our shop sells bicycles. The store is open Monday to Friday from 9 am to 6 pm. "
        "On Saturdays we close at noon.",
        score=0.9,
    )
]  # fmt: skip


async def collect(bot: Bot, messages=QUESTION, passages=()) -> tuple[str, Completed, list[TextDelta]]:
    deltas: list[TextDelta] = []
    completed: list[Completed] = []
    async for event in stream_chat(bot=bot, messages=list(messages), passages=list(passages)):
        if isinstance(event, TextDelta):
            assert not completed, "no text after Completed"
            deltas.append(event)
        else:
            completed.append(event)
    assert len(completed) == 1, "exactly one Completed, at the end"
    return "".join(d.text for d in deltas), completed[0], deltas


def requests_for(server: FakeLLMServer, model: str, *, settled: bool = True):
    """The server's records for ``model``; ``settled``: once each has an outcome (the server thread may
    still be writing the last bytes of a stream after the client has read everything it needs)."""
    if settled:
        server.wait_for(lambda records: all(r.outcome != "pending" for r in records if r.model == model))
    return [r for r in server.requests if r.model == model]


async def test_stream_arrives_token_by_token_with_usage_and_cost(fake_llm):
    model = scripted(reply="The store opens at nine and closes at six", tps=50)
    bot = fake_bot(fake_llm, model=model)
    seen_before_server_finished = []
    deltas = []
    async for event in stream_chat(bot=bot, messages=QUESTION, passages=PASSAGES):
        if isinstance(event, TextDelta):
            deltas.append(event.text)
            seen_before_server_finished.append(
                requests_for(fake_llm, model, settled=False)[0].finished is None
            )
        else:
            completed = event
    assert deltas == ["The", " store", " opens", " at", " nine", " and", " closes", " at", " six"]
    assert seen_before_server_finished[0], "the first token reached us while the server was still sending"
    (record,) = requests_for(fake_llm, model)
    assert record.stream and record.include_usage and record.outcome == "ok"
    assert completed.usage.completion_tokens == 9
    assert completed.usage.prompt_tokens > 0  # as reported by the server, not estimated
    assert completed.model == "gpt-4o-mini" and completed.provider == "custom"
    assert completed.cost_usd == estimate_cost("gpt-4o-mini", completed.usage) and completed.cost_usd > 0
    assert not completed.offline and not completed.incomplete and not completed.fallback


async def test_passages_and_system_prompt_reach_the_model(fake_llm):
    model = scripted()
    bot = fake_bot(fake_llm, model=model, system_prompt="You are Bikey.", history_turns=1)
    history = [
        {"role": "user", "content": "old question"}, {"role": "assistant", "content": "old answer"},
        {"role": "user", "content": "recent question"}, {"role": "assistant", "content": "recent answer"},
        *QUESTION,
    ]  # fmt: skip
    text, _, _ = await collect(bot, history, PASSAGES)
    assert text == "Echo: What are your opening hours?"
    sent = requests_for(fake_llm, model)[0].messages
    assert sent[0]["role"] == "system" and "You are Bikey." in sent[0]["content"]
    assert "[1] Store guide, page 2 (https://example.com/guide)" in sent[0]["content"]
    assert [m["content"] for m in sent[1:]] == ["recent question", "recent answer", QUESTION[0]["content"]]


async def test_429_is_retried_after_its_retry_after(fake_llm):
    model = scripted(status=429, retry_after=1, fail=1)
    text, completed, _ = await collect(fake_bot(fake_llm, model=model))
    first, second = requests_for(fake_llm, model)
    assert first.outcome == "status 429" and second.outcome == "ok"
    assert second.started - first.finished >= 1.0  # waited at least what Retry-After asked
    assert text.startswith("Echo:") and not completed.fallback


async def test_500_and_dropped_connections_are_retried_with_backoff(fake_llm):
    flaky = scripted(status=500, fail=2)
    text, completed, _ = await collect(fake_bot(fake_llm, model=flaky))
    assert [r.outcome for r in requests_for(fake_llm, flaky)] == ["status 500", "status 500", "ok"]
    assert text and not completed.fallback

    dropping = scripted(drop=1, fail=1)
    text, _, _ = await collect(fake_bot(fake_llm, model=dropping))
    assert [r.outcome for r in requests_for(fake_llm, dropping)] == ["dropped", "ok"]
    assert text.startswith("Echo:")

    broken_before_first_token = scripted(break_after=0, fail=1)
    text, completed, _ = await collect(fake_bot(fake_llm, model=broken_before_first_token))
    assert [r.outcome for r in requests_for(fake_llm, broken_before_first_token)] == ["broken", "ok"]
    assert text.startswith("Echo:") and not completed.incomplete


async def test_dead_primary_falls_back_to_the_fallback_model(fake_llm, settings):
    primary, fallback = scripted(status=500), scripted("gpt-4o", reply="from the fallback")
    text, completed, _ = await collect(fake_bot(fake_llm, model=primary, fallback_model=fallback))
    assert len(requests_for(fake_llm, primary)) == settings.LLM_MAX_RETRIES + 1
    assert text == "from the fallback"
    assert completed.fallback and completed.model == "gpt-4o" and not completed.offline


async def test_client_errors_and_long_retry_after_skip_straight_to_the_fallback(fake_llm, settings):
    bad_request, fallback = scripted(status=400), scripted(reply="ok")
    await collect(fake_bot(fake_llm, model=bad_request, fallback_model=fallback))
    assert len(requests_for(fake_llm, bad_request)) == 1

    settings.LLM_RETRY_MAX_WAIT = 2
    throttled, fallback = scripted(status=429, retry_after=60), scripted(reply="ok")
    text, completed, _ = await collect(fake_bot(fake_llm, model=throttled, fallback_model=fallback))
    assert len(requests_for(fake_llm, throttled)) == 1 and text == "ok" and completed.fallback


async def test_wrong_key_falls_back_to_offline_without_leaking_the_key(fake_llm, caplog):
    caplog.set_level(logging.DEBUG)
    wrong_key = "sk-wrong-9c8b7a6f5e4d3c2b1a00"
    bot = fake_bot(fake_llm, model=scripted(), key=wrong_key)
    text, completed, _ = await collect(bot, passages=PASSAGES)
    assert completed.offline and completed.fallback
    assert text.startswith(NOTICE_AFTER_FAILURE)
    assert "HTTP 401" in caplog.text  # the failure is logged...
    assert wrong_key not in caplog.text and wrong_key not in text  # ...without the key the server echoed
    assert SERVER_KEY not in caplog.text


async def test_stall_before_first_token_times_out_and_falls_back(fake_llm, settings):
    settings.LLM_FIRST_TOKEN_TIMEOUT = 0.5
    stalled, fallback = scripted(stall=30), scripted("gpt-4o", reply="fallback answer")
    text, completed, _ = await collect(fake_bot(fake_llm, model=stalled, fallback_model=fallback))
    assert text == "fallback answer" and completed.fallback
    assert len(requests_for(fake_llm, stalled)) == 1  # a timed-out model is not retried
    # The abandoned request was closed, not left generating.
    assert fake_llm.wait_for(
        lambda rs: [r.outcome for r in rs if r.model == stalled] == ["client_disconnected"]
    )


async def test_stall_before_headers_times_out_too(fake_llm, settings):
    settings.LLM_FIRST_TOKEN_TIMEOUT = 0.5
    stalled, fallback = scripted(stall_headers=30), scripted(reply="fallback answer")
    text, completed, _ = await collect(fake_bot(fake_llm, model=stalled, fallback_model=fallback))
    assert text == "fallback answer" and completed.fallback


async def test_total_limit_ends_a_long_answer_as_incomplete(fake_llm, settings):
    settings.LLM_TOTAL_TIMEOUT = 0.5
    slow = scripted(words=200, tps=20)
    _text, completed, deltas = await collect(fake_bot(fake_llm, model=slow, fallback_model=scripted()))
    assert 0 < len(deltas) < 200
    assert completed.incomplete and not completed.fallback  # text was shown: no switch to another model
    assert completed.usage.completion_tokens > 0  # estimated when the stream never reported usage
    assert fake_llm.wait_for(lambda rs: [r.outcome for r in rs if r.model == slow] == ["client_disconnected"])


async def test_broken_stream_after_text_ends_the_answer_as_incomplete(fake_llm):
    broken = scripted(reply="one two three four five", break_after=3)
    text, completed, _ = await collect(fake_bot(fake_llm, model=broken, fallback_model=scripted()))
    assert text == "one two three"
    assert completed.incomplete and completed.model == "gpt-4o-mini"
    assert len(requests_for(fake_llm, broken)) == 1


async def test_consecutive_answers_reuse_one_provider_connection(fake_llm):
    bot = fake_bot(fake_llm, model=scripted(reply="fine thanks"))
    before = fake_llm.connections
    for _ in range(3):
        text, completed, _ = await collect(bot)
        assert text == "fine thanks" and not completed.incomplete
    assert fake_llm.connections - before == 1, "no new connection (and handshake) per answer"


async def test_cancelling_the_consumer_closes_the_upstream_stream(fake_llm):
    slow = scripted(words=500, tps=20)
    bot = fake_bot(fake_llm, model=slow)
    first_delta = asyncio.Event()

    async def visitor() -> None:
        async for event in stream_chat(bot=bot, messages=QUESTION, passages=[]):
            if isinstance(event, TextDelta):
                first_delta.set()

    task = asyncio.create_task(visitor())
    await asyncio.wait_for(first_delta.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    closed = await asyncio.to_thread(
        fake_llm.wait_for, lambda rs: [r.outcome for r in rs if r.model == slow] == ["client_disconnected"], 3
    )
    assert closed, "the server saw the client go away"
    assert requests_for(fake_llm, slow)[0].tokens_sent < 100  # it stopped long before the 500 words


async def test_closing_the_generator_closes_the_upstream_stream(fake_llm):
    slow = scripted(words=500, tps=20)
    stream = stream_chat(bot=fake_bot(fake_llm, model=slow), messages=QUESTION, passages=[])
    assert isinstance(await anext(stream), TextDelta)
    await stream.aclose()
    closed = await asyncio.to_thread(
        fake_llm.wait_for, lambda rs: [r.outcome for r in rs if r.model == slow] == ["client_disconnected"], 3
    )
    assert closed


async def test_unreachable_endpoint_ends_in_the_offline_provider(settings):
    settings.LLM_CONNECT_TIMEOUT = 0.5
    bot = Bot(name="b", provider="custom", base_url="http://127.0.0.1:9/v1", model="m")
    text, completed, _ = await collect(bot, passages=PASSAGES)
    assert completed.offline and completed.fallback and completed.provider == "offline"
    assert "open Monday to Friday from 9 am to 6 pm" in text and "Source: Store guide, page 2" in text


async def test_without_any_key_bots_answer_offline_from_their_knowledge():
    bot = Bot(name="Fresh install")  # provider "default", and the deployment has no key configured
    assert endpoints_for(bot) == []
    text, completed, deltas = await collect(bot, passages=PASSAGES)
    assert text.startswith(NOTICE) and "No language model is connected" in text
    assert "open Monday to Friday from 9 am to 6 pm" in text
    assert len(deltas) > 3  # streamed, like a model
    assert completed.offline and not completed.fallback and completed.cost_usd == Decimal(0)
    assert completed.usage.total_tokens == 0


async def test_deployment_default_model_is_used_when_configured(fake_llm, settings):
    settings.LLM_DEFAULT_BASE_URL = fake_llm.base_url
    settings.LLM_DEFAULT_API_KEY = SERVER_KEY
    settings.LLM_DEFAULT_MODEL = scripted(reply="default model here")
    text, completed, _ = await collect(Bot(name="b"))
    assert text == "default model here" and completed.provider == "default"


async def test_clients_are_reused_per_endpoint_and_key():
    a = Endpoint("custom", "http://127.0.0.1:1/v1", "m", "key-a")
    assert get_client(a) is get_client(Endpoint("custom", "http://127.0.0.1:1/v1", "other-model", "key-a"))
    assert get_client(a) is not get_client(Endpoint("custom", "http://127.0.0.1:1/v1", "m", "key-b"))
    assert "key-a" not in repr(a)


def test_fallback_endpoint_inherits_the_primary_provider_url_and_key():
    bot = Bot(name="b", provider="openai", model="gpt-4o", fallback_model="gpt-4o-mini")
    bot.set_api_key("sk-primary-key-123456")
    primary, fallback = endpoints_for(bot)
    assert (primary.model, fallback.model) == ("gpt-4o", "gpt-4o-mini")
    assert fallback.base_url == primary.base_url == "https://api.openai.com/v1"
    assert fallback.api_key == "sk-primary-key-123456"
    bot.set_api_key("")
    assert endpoints_for(bot) == []  # OpenAI without a key is not usable: offline
    bot.fallback_provider, bot.fallback_model = "ollama", ""
    (only,) = endpoints_for(bot)
    assert (only.provider, only.model, only.base_url) == ("ollama", "llama3.1", "http://localhost:11434/v1")


async def test_a_key_that_cannot_be_decrypted_means_offline_not_a_crash(settings, caplog):
    settings.FIELD_ENCRYPTION_KEYS = ["first-passphrase-0123456789abcdef"]
    bot = Bot(name="b", provider="openai", model="gpt-4o-mini")
    bot.set_api_key("sk-rotated-away-0123456789abcdef")
    settings.FIELD_ENCRYPTION_KEYS = ["other-passphrase-0123456789abcdef"]
    _text, completed, _ = await collect(bot, passages=PASSAGES)
    assert completed.offline and "cannot be decrypted" in caplog.text


async def test_sampling_parameters_follow_the_provider_and_model(fake_llm):
    model = scripted()
    await collect(fake_bot(fake_llm, model=model, temperature=0.7, max_output_tokens=300))
    params = requests_for(fake_llm, model)[0].params
    assert params["temperature"] == 0.7 and params["max_tokens"] == 300

    # OpenAI's reasoning models take max_completion_tokens and only their default temperature.
    reasoning = scripted("gpt-5-mini")
    bot = fake_bot(fake_llm, model=reasoning, max_output_tokens=300)
    bot.provider = "openai"
    bot.base_url = fake_llm.base_url
    await collect(bot)
    params = requests_for(fake_llm, reasoning)[0].params
    assert (
        params["max_completion_tokens"] == 300 and "max_tokens" not in params and "temperature" not in params
    )


async def test_servers_that_refuse_stream_options_are_asked_again_without_them(fake_llm):
    model = scripted(no_stream_options=1, reply="one two three")
    text, completed, _ = await collect(fake_bot(fake_llm, model=model))
    first, second = requests_for(fake_llm, model)
    assert first.outcome == "status 400" and "stream_options" in first.params
    assert second.outcome == "ok" and "stream_options" not in second.params
    assert text == "one two three" and not completed.fallback
    assert completed.usage.completion_tokens > 0  # estimated
