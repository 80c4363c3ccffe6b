"""Realistic chat traffic, written fast: for demos ("a month of traffic") and the scale benchmarks.

Conversations and messages are generated in Python from a seeded random source and streamed into
PostgreSQL with ``COPY`` (tens of thousands of rows a second, instead of hundreds through the ORM). The
shape follows what the pipeline stores: visitors who come back, business-hours peaks and quieter
weekends, a channel mix, answers from FAQ, knowledge, a model without sources, the offline provider, the
fallback reply, failures and interrupted streams, feedback on some answers, and tokens, cost, latency and
time to first token per answer. Nothing here runs in the chat path.
"""

from __future__ import annotations

import datetime as dt
import math
import random
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal

from django.db import connection, transaction
from django.utils import timezone
from django.utils.text import slugify

from accounts.models import Organization
from chatbots.conversation_summary import conversation_summaries_rebuild
from chatbots.models import Bot, Channel, Feedback, MessageRole, MessageStatus

QUESTIONS = (
    "How do I return {item}?", "What does shipping to {place} cost?", "Is {item} in stock?",
    "Can I change the size of my {item} order?", "When will my {item} arrive?",
    "Do you ship {item} to {place}?", "How long is the warranty on {item}?",
    "My {item} arrived broken, what now?", "Can I pay for {item} in instalments?",
    "Do you have a discount code for {item}?", "How do I reset my password?",
    "Where is your store in {place}?", "What are your opening hours in {place}?",
    "How do I cancel my subscription?", "Can I talk to a human?", "Is {item} waterproof?",
    "What is the difference between the two {item} models?", "How do I track my order to {place}?",
)  # fmt: skip
ITEMS = (
    "boots",
    "a jacket",
    "the backpack",
    "gloves",
    "a tent",
    "the stove",
    "socks",
    "a helmet",
    "the bike",
)
PLACES = ("Berlin", "Lisbon", "Oslo", "Toronto", "Austin", "Lyon", "Kraków", "Osaka", "Melbourne")
ANSWERS = (
    "You can return unused items within 30 days. Start the return from your order page and print the label.",
    "Shipping is free above 50 EUR; below that it costs 4.90 EUR and takes two to four working days.",
    "Yes, it is in stock in most sizes. Sizes that are sold out show a date when they are back.",
    "Orders can be changed until they are packed, usually within two hours. Write to us with the number.",
    "Every product has a two-year warranty; for repairs send us a photo and your order number.",
    "You can pay by card, PayPal or in three instalments without interest for orders above 100 EUR.",
)
SOURCES = (
    '[{"id": 1, "title": "Returns policy", "url": "https://example.com/returns"}]',
    '[{"id": 2, "title": "Shipping", "url": "https://example.com/shipping"}]',
    '[{"id": 3, "title": "Warranty", "url": ""}, {"id": 4, "title": "Repairs", "url": ""}]',
)
FAQ_SOURCES = '[{"id": 9, "title": "FAQ", "url": ""}]'
FALLBACK_TEXT = "Sorry, I don't know that yet. Leave your e-mail and a person will get back to you."
# model -> (share of model answers, USD per 1M prompt tokens, USD per 1M completion tokens)
MODELS = {"gpt-4o-mini": (0.7, 0.15, 0.60), "gpt-4o": (0.2, 2.50, 10.00), "mistral-small": (0.1, 0.2, 0.6)}
CHANNELS = ((Channel.WIDGET, 0.8), (Channel.API, 0.15), (Channel.OPENAI, 0.05))
# Share of the day's questions per UTC hour: quiet nights, a morning and an afternoon peak.
HOURS = (1, 1, 1, 1, 1, 2, 3, 5, 8, 10, 11, 10, 8, 9, 10, 11, 10, 8, 6, 5, 4, 3, 2, 1)
# What an answer turned out to be (precedence as analytics counts it), with its share.
OUTCOMES = (
    ("faq", 0.15), ("knowledge", 0.55), ("model", 0.10), ("fallback", 0.09), ("offline", 0.04),
    ("incomplete", 0.03), ("failed", 0.04),
)  # fmt: skip
CONVERSATION_COLUMNS = (
    "id", "organization_id", "bot_id", "channel", "visitor_id", "visitor_attributes", "created_at",
    "last_message_at", "language",
)  # fmt: skip
# The visitors' languages, one in ten unknown (picked from the conversation id: the random stream is unchanged).
LANGUAGES = ("en", "en", "en", "en", "de", "de", "fr", "es", "nl", "")
MESSAGE_COLUMNS = (
    "organization_id", "conversation_id", "role", "text", "status", "error_code", "sources",
    "answered_from_faq", "model", "provider", "offline", "prompt_tokens", "completion_tokens", "cost_usd",
    "latency_ms", "first_token_ms", "feedback", "feedback_comment", "feedback_at", "created_at",
)  # fmt: skip
# Written the same for every message (added to each row as it is copied).
MESSAGE_CONSTANT_COLUMNS = ("search_query", "search_rewritten", "answered_from_cache")
MESSAGE_CONSTANTS = ("", False, False)


@dataclass
class TrafficSeed:
    """What was written."""

    organizations: list[int] = field(default_factory=list)
    bots: int = 0
    conversations: int = 0
    messages: int = 0
    first_day: dt.date | None = None
    last_day: dt.date | None = None
    peak_day: dt.date | None = None


def _weights_over_days(days: int, first: dt.date) -> list[float]:
    """Quieter weekends and a slow growth over the period."""
    weights = []
    for i in range(days):
        day = first + dt.timedelta(days=i)
        weekend = 0.6 if day.weekday() >= 5 else 1.0
        weights.append(weekend * (0.8 + 0.4 * i / max(days - 1, 1)))
    return weights


def _turns(rng: random.Random, conversations: int, total_turns: int) -> list[int]:
    """Turns (a question and its answer) per conversation, 1 to 6, adding up to ``total_turns``."""
    mean = total_turns / conversations
    turns = [max(1, min(6, round(rng.expovariate(1 / mean) + 0.5))) for _ in range(conversations)]
    diff = total_turns - sum(turns)
    step = 1 if diff > 0 else -1
    while diff:
        i = rng.randrange(conversations)
        if 1 <= turns[i] + step <= 6:
            turns[i] += step
            diff -= step
    return turns


def _organizations(*, count: int, names_from: int, rng: random.Random) -> list[Organization]:
    created = []
    for i in range(count):
        name = f"Seeded Outfitters {names_from + i + 1}"
        org = Organization.objects.create(name=name, slug=f"{slugify(name)}-{uuid.uuid4().hex[:6]}")
        created.append(org)
    return created


def _bots_for(organization: Organization, *, rng: random.Random) -> list[Bot]:
    bots = list(Bot.objects.filter(organization=organization).order_by("pk"))
    if bots:
        return bots
    names = ("Support", "Sales", "Docs")[: rng.choice((1, 2, 2, 3))]
    return Bot.objects.bulk_create(
        [
            Bot(organization=organization, name=f"{name} assistant", fallback_reply=FALLBACK_TEXT)
            for name in names
        ]
    )


def _pick(rng: random.Random, choices: tuple[tuple[str, float], ...]) -> str:
    x = rng.random()
    for value, share in choices:
        x -= share
        if x < 0:
            return value
    return choices[-1][0]


class _Writer:
    """Generates one conversation at a time as rows for the two COPY streams."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.model_names = list(MODELS)
        self.model_weights = [share for share, _, _ in MODELS.values()]

    def conversation(
        self,
        *,
        organization_id: int,
        bot_id: int,
        visitor: str,
        start: dt.datetime,
        turns: int,
        refused: bool,
    ) -> tuple[tuple, list[tuple]]:
        """``turns`` questions with their answers; ``refused``: the first question was sent too fast (rate
        limited, no answer) and the visitor asked again."""
        rng = self.rng
        conversation_id = uuid.uuid4()
        channel = _pick(rng, CHANNELS)
        when = start
        messages = []
        for turn in range(turns):
            question = rng.choice(QUESTIONS).format(item=rng.choice(ITEMS), place=rng.choice(PLACES))
            if refused and turn == 0:
                messages.append(
                    (organization_id, conversation_id, MessageRole.USER, question, MessageStatus.FAILED,
                     "rate_limited", "[]", False, "", "", False, 0, 0, None, None, None, "", "", None, when)
                )  # fmt: skip
                when += dt.timedelta(seconds=rng.randint(5, 60))
            messages.append(
                (organization_id, conversation_id, MessageRole.USER, question, MessageStatus.COMPLETE, "",
                 "[]", False, "", "", False, 0, 0, None, None, None, "", "", None, when)
            )  # fmt: skip
            answer_at = when + dt.timedelta(milliseconds=rng.randint(50, 400))
            messages.append(self._answer(organization_id, conversation_id, answer_at))
            when += dt.timedelta(seconds=rng.randint(15, 180))
        row = (
            conversation_id, organization_id, bot_id, channel, visitor, "{}", start, messages[-1][-1],
            LANGUAGES[conversation_id.int % len(LANGUAGES)],
        )  # fmt: skip
        return row, messages

    def _answer(self, organization_id: int, conversation_id: uuid.UUID, when: dt.datetime) -> tuple:
        rng = self.rng
        outcome = _pick(rng, OUTCOMES)
        status, error, sources, faq, model, provider, offline = (
            MessageStatus.COMPLETE,
            "",
            "[]",
            False,
            "",
            "",
            False,
        )
        prompt = completion = 0
        cost = None
        text = rng.choice(ANSWERS)
        ttft = latency = None
        if outcome == "faq":
            faq, provider, sources = True, "faq", FAQ_SOURCES
            ttft, latency = rng.randint(15, 60), rng.randint(30, 120)
        elif outcome == "fallback":
            provider, text = "fallback_reply", FALLBACK_TEXT
            ttft, latency = rng.randint(20, 80), rng.randint(40, 150)
        elif outcome == "offline":
            provider, model, offline, sources = "offline", "offline", True, rng.choice(SOURCES)
            ttft, latency = rng.randint(60, 250), rng.randint(150, 600)
        else:
            model = rng.choices(self.model_names, self.model_weights)[0]
            provider = "openai" if model.startswith("gpt") else "mistral"
            prompt, completion = rng.randint(400, 2400), rng.randint(40, 400)
            _, per_prompt, per_completion = MODELS[model]
            cost = (Decimal(prompt * per_prompt + completion * per_completion) / Decimal(1_000_000)).quantize(
                Decimal("0.000001")
            )
            ttft = int(rng.lognormvariate(math.log(550), 0.5))
            latency = ttft + int(completion * rng.uniform(12, 30))
            sources = rng.choice(SOURCES) if outcome in ("knowledge", "incomplete") else "[]"
            if outcome == "incomplete":
                status, error = MessageStatus.INCOMPLETE, "client_disconnected"
                completion, text = completion // 3, text[: len(text) // 3]
            elif outcome == "failed":
                status, error, text, completion, cost = MessageStatus.FAILED, "llm_unavailable", "", 0, None
                ttft, latency = None, rng.randint(20_000, 30_000)
        feedback, feedback_at = "", None
        if status == MessageStatus.COMPLETE and rng.random() < 0.12:
            feedback = (
                Feedback.DOWN if outcome in ("fallback", "model") or rng.random() < 0.2 else Feedback.UP
            )
            feedback_at = when + dt.timedelta(seconds=rng.randint(5, 600))
        return (
            organization_id, conversation_id, MessageRole.ASSISTANT, text, status, error, sources, faq, model,
            provider, offline, prompt, completion, cost, latency, ttft, feedback, "", feedback_at,
            when + dt.timedelta(milliseconds=latency or 0),
        )  # fmt: skip


def traffic_seed(
    *,
    messages: int,
    conversations: int,
    days: int,
    organizations: int = 0,
    organization: Organization | None = None,
    peak_messages: int = 0,
    seed: int = 19,
    now: dt.datetime | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> TrafficSeed:
    """Write ``messages`` messages in ``conversations`` conversations over the last ``days`` days (today
    included, nothing after ``now``), into ``organization`` (its bots, or new ones) or into
    ``organizations`` new organizations of very different sizes. ``peak_messages`` of them fall on one day
    a month back (a launch day: the roll-up benchmark's big day).

    The same ``seed`` gives the same traffic. Analytics is not rolled up here: run
    ``manage.py analytics_rollup --days N`` afterwards.
    """
    if messages < 2 * conversations:
        raise ValueError("every conversation needs at least a question and an answer")
    rng = random.Random(seed)
    now = now or timezone.now()
    last_day = now.date()
    first_day = last_day - dt.timedelta(days=days - 1)
    if organization is not None:
        orgs = [organization]
    else:
        orgs = _organizations(count=organizations, names_from=Organization.objects.count(), rng=rng)
    bots = {org.pk: [bot.pk for bot in _bots_for(org, rng=rng)] for org in orgs}
    # Organization sizes follow a long tail (Zipf): of 50, the biggest has ~25x the median's traffic.
    org_weights = [1 / (i + 1) for i in range(len(orgs))]
    result = TrafficSeed(
        organizations=[org.pk for org in orgs], bots=sum(len(v) for v in bots.values()),
        first_day=first_day, last_day=last_day,
    )  # fmt: skip

    # Exactly ``messages``: a turn is two messages, and a conversation with a refused question (~0.5 % of
    # questions) has one more.
    refusals = min(conversations, round(messages * 0.0025))
    refusals += (messages - refusals) % 2
    turns = _turns(rng, conversations, (messages - refusals) // 2)
    refused = set(rng.sample(range(conversations), refusals))
    peak_conversations = (
        min(conversations, round(conversations * peak_messages / messages)) if peak_messages else 0
    )
    peak_day = last_day - dt.timedelta(days=min(30, days - 1)) if peak_conversations else None
    result.peak_day = peak_day
    day_weights = _weights_over_days(days, first_day)
    if peak_day is not None:
        day_weights[(peak_day - first_day).days] = 0.0
    day_choices = rng.choices(range(days), day_weights, k=conversations - peak_conversations)
    day_choices += [(peak_day - first_day).days] * peak_conversations if peak_day else []
    writer = _Writer(rng)
    visitors: dict[int, list[str]] = {org.pk: [] for org in orgs}
    org_choices = rng.choices([org.pk for org in orgs], org_weights, k=conversations)

    def rows() -> Iterator[tuple[tuple, list[tuple]]]:
        for i in range(conversations):
            org_id = org_choices[i]
            day = first_day + dt.timedelta(days=day_choices[i])
            hour = rng.choices(range(24), HOURS)[0]
            start = dt.datetime.combine(day, dt.time(hour), tzinfo=dt.UTC) + dt.timedelta(
                seconds=rng.randint(0, 3599)
            )
            if start > now - dt.timedelta(minutes=30):  # the conversation must be over by now
                start = now - dt.timedelta(seconds=rng.randint(1800, 6 * 3600))
            pool = visitors[org_id]
            if pool and rng.random() < 0.3:  # a returning visitor
                visitor = rng.choice(pool)
            else:
                visitor = "" if rng.random() < 0.03 else uuid.uuid4().hex
                if visitor:
                    pool.append(visitor)
            yield writer.conversation(
                organization_id=org_id, bot_id=rng.choice(bots[org_id]), visitor=visitor, start=start,
                turns=turns[i], refused=i in refused,
            )  # fmt: skip
            if progress and (i + 1) % 10_000 == 0:
                progress(i + 1, conversations)

    with transaction.atomic(), connection.cursor() as cursor:
        batch_conversations: list[tuple] = []
        batch_messages: list[tuple] = []
        for conversation, its_messages in rows():
            batch_conversations.append(conversation)
            batch_messages.extend(its_messages)
            if len(batch_messages) >= 50_000:
                result.conversations += _copy(
                    cursor, "chatbots_conversation", CONVERSATION_COLUMNS, batch_conversations
                )
                result.messages += _copy_messages(cursor, batch_messages)
                conversation_summaries_rebuild(conversation_ids=[row[0] for row in batch_conversations])
                batch_conversations, batch_messages = [], []
        result.conversations += _copy(
            cursor, "chatbots_conversation", CONVERSATION_COLUMNS, batch_conversations
        )
        result.messages += _copy_messages(cursor, batch_messages)
        # The inbox's summary of each conversation, as the chat services keep it (chatbots.conversation_summary).
        conversation_summaries_rebuild(conversation_ids=[row[0] for row in batch_conversations])
    return result


def _copy_messages(cursor, rows: list[tuple]) -> int:
    return _copy(
        cursor, "chatbots_message", MESSAGE_COLUMNS + MESSAGE_CONSTANT_COLUMNS,
        [row + MESSAGE_CONSTANTS for row in rows],
    )  # fmt: skip


def _copy(cursor, table: str, columns: tuple[str, ...], rows: list[tuple]) -> int:
    # Conversations go first in each batch: the messages' foreign key is checked row by row.
    with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)
    return len(rows)
