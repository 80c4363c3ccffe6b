"""Test data for chatbots: bots, conversations and messages, bots taught what to answer, and bots that
point at the local OpenAI-compatible test server (chatbots.llm.testserver) with a scripted answer."""

from __future__ import annotations

import time
import uuid
from urllib.parse import quote

from accounts.models import Organization
from accounts.services import api_key_create
from accounts.tests.factories import make_organization, owner_of
from chatbots.conversation_summary import conversation_summaries_rebuild
from chatbots.llm.testserver import FakeLLMServer
from chatbots.models import Bot, Conversation, Message, MessageRole
from chatbots.services import api_key_set_bots, bot_create
from knowledge.models import Source, SourceKind, SourceStatus
from knowledge.services import source_create, source_ingest

# The key the fake server expects (the ``fake_llm`` fixture of chatbots/testing.py).
SERVER_KEY = "sk-parlor-test-5f1c2a9e7b3d4c6f8a0b"

RETURNS_TEXT = (
    "# Returns policy\n\n"
    "You can return boots within 30 days of delivery for a full refund. "
    "Items must be unworn and in their original box.\n\n"
    "# Shipping\n\nStandard shipping takes 3 to 5 working days. Express shipping arrives the next day."
)
FAQ_QUESTION = "Do you ship to Switzerland?"
FAQ_ANSWER = "Yes, we ship to Switzerland; customs fees are included in the price."

# What the bots of the widget's browser tests know, and how their model answers.
ANSWER_QUESTION = "How long do I have to return boots?"
ANSWER_REPLY = "You can return unworn boots within **30 days** of delivery. Refunds take about a week."
# The test server echoes the question when no reply is scripted: the payload reaches the chat as model output.
XSS_QUESTION = (
    '<img src=x onerror="window.__pwned=1"> <script>window.__pwned=2</script> '
    "[click me](javascript:window.__pwned=3) <iframe src=javascript:window.__pwned=4></iframe> **bold**"
)
RETURNS_POLICY = """Returns policy

Unworn boots and shoes can be returned within 30 days of delivery for a full refund.
Refunds are paid to the original payment method within about a week of the return arriving.
Tents that have been used cannot be returned, but our repair service fixes them for free.
"""


def make_bot(*, organization: Organization | None = None, name: str = "Helper", **fields: object) -> Bot:
    """A saved bot as the database holds it (offline: no provider configured)."""
    return Bot.objects.create(organization=organization or make_organization(), name=name, **fields)


def make_conversation(*, bot: Bot | None = None, **fields: object) -> Conversation:
    bot = bot or make_bot()
    return Conversation.objects.create(organization=bot.organization, bot=bot, **fields)


def make_message(
    *, conversation: Conversation, role: str = MessageRole.USER, text: str = "Hello", **fields: object
) -> Message:
    message = Message.objects.create(
        organization=conversation.organization, conversation=conversation, role=role, text=text, **fields
    )
    # Stored as the chat services store messages: with the conversation's inbox summary up to date.
    conversation_summaries_rebuild(conversation_ids=[conversation.pk])
    return message


# --- Bots answering through the fake model --------------------------------------------------------
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


def scripted(model: str = "gpt-4o-mini", **script: object) -> str:
    """A model name carrying a script for the fake server, unique per call so counters never collide."""
    params = "&".join(f"{key}={value}" for key, value in {**script, "id": uuid.uuid4().hex[:8]}.items())
    return f"{model}?{params}"


def fake_bot(
    server: FakeLLMServer, *, model: str, fallback_model: str = "", key: str = SERVER_KEY, **extra
) -> Bot:
    """An unsaved bot on the custom provider pointing at the fake server (enough for the provider layer)."""
    bot = Bot(
        name="Test bot",
        provider="custom",
        base_url=server.base_url,
        model=model,
        fallback_model=fallback_model,
        **extra,
    )
    bot.set_api_key(key)
    return bot


# --- Bots of the widget's browser tests (answered by the live Parlor through the SDK) ------------
def scripted_model(*, reply: str | None = None, tps: int = 40) -> str:
    script = f"tps={tps}"
    if reply is not None:
        script += "&reply=" + quote(reply, safe="*")
    return "parlor-test?" + script


def teach_bot(bot: Bot, *, llm_base_url: str, reply: str | None = ANSWER_REPLY) -> Bot:
    """Point the bot at the test model (answering ``reply``, or echoing the question when None)."""
    bot.provider = "custom"
    bot.base_url = llm_base_url
    bot.model = scripted_model(reply=reply)
    bot.answer_style = "mixed"  # answer even where retrieval finds nothing
    bot.save(update_fields=["provider", "base_url", "model", "answer_style"])
    return bot


def give_knowledge(bot: Bot, *, timeout: float = 120.0) -> Source:
    """Ingest the returns policy through the real Celery worker and attach it to the bot."""
    source = source_create(
        organization=bot.organization,
        kind=SourceKind.TEXT,
        title="Returns policy",
        text=RETURNS_POLICY,
        url="https://acme-outdoor.example/returns",
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        source.refresh_from_db()
        if source.status in (SourceStatus.READY, SourceStatus.FAILED):
            break
        time.sleep(0.2)
    assert source.status == SourceStatus.READY, (source.status, source.status_reason)
    bot.sources.add(source)
    return source


def admin_form_data(**overrides):
    bot = Bot()
    data = {name: "" if getattr(bot, name) is None else getattr(bot, name) for name in (
        "status", "system_prompt", "greeting", "answer_style", "fallback_reply", "language", "history_turns",
        "api_system_messages",
        "retrieval_top_k", "retrieval_min_score", "provider", "temperature", "max_output_tokens",
        "widget_primary_color", "widget_position", "widget_launcher_text", "widget_theme",
        "answer_cache_enabled", "answer_cache_ttl_seconds", "lead_capture", "lead_capture_after",
    )}  # fmt: skip
    data.update({"name": "Support", "suggested_questions": "Opening hours?\nReturns?", "allowed_origins": ""})
    data.update(overrides)
    return data


# Entries the widget runtime cannot use: each one must be refused when the bot is saved.
UNUSABLE_ORIGINS = [
    "https://user@shop.example",
    "https://user:pw@shop.example",
    "https://shop.example;",
    "https://shop.example; script-src *",
    "https://shop .example",
    "https://shop.example https://evil.example",
    "https://shop.example,https://evil.example",
    "https://sub.*.example.com",
    "https://*.*.example.com",
    "https://*example.com",
    "https://shop.example:*",
    "http://*",
    "*.example.com",
    "shop.example",
    "https://shop.example/path",
    "https://shop.example?x=1",
    "https://shop.example#top",
    "https://shop_1.example",
    "https://shop.example:99999",
    "https://[::1]:8000",
    "ftp://shop.example",
    "https://'self'",
]
