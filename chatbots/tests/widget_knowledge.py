"""What the bots in the widget's browser tests know, and how their model answers.

The model is the local OpenAI-compatible test server (chatbots.llm.testserver), reached through the real
`openai` SDK from the live Daphne process; its answer is scripted in the model name. Knowledge comes from
a text source ingested by the real Celery worker, so answers carry real sources from hybrid retrieval.
"""

from __future__ import annotations

import time
from urllib.parse import quote

from chatbots.models import Bot
from knowledge.models import Source, SourceKind, SourceStatus
from knowledge.services import source_create

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
