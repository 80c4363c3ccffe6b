"""``manage.py seed_traffic``: generated traffic with exactly the messages asked for, every kind of answer,
nothing in the future, and only in the organizations it was pointed at."""

from __future__ import annotations

import datetime as dt
from collections import Counter

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from accounts.models import Organization
from accounts.tests.factories import make_organization
from chatbots.models import Bot, Conversation, Message
from chatbots.tests.factories import make_bot

pytestmark = pytest.mark.django_db


def test_a_month_for_one_organization_has_exactly_the_messages_asked_for(capsys):
    organization = make_organization(name="Demo shop")
    bot = make_bot(organization=organization)
    bystander = make_bot(name="Bystander")
    call_command("seed_traffic", organization=organization.slug, messages=2_001, conversations=400, days=30)

    messages = Message.objects.filter(organization=organization)
    assert messages.count() == 2_001 and Conversation.objects.filter(bot=bot).count() == 400
    assert not Message.objects.filter(organization=bystander.organization).exists()
    now = timezone.now()
    first = now - dt.timedelta(days=30)
    assert (
        not messages.filter(created_at__gt=now).exists()
        and not messages.filter(created_at__lt=first).exists()
    )
    answers = messages.filter(role="assistant")
    kinds = Counter(
        "faq" if m.answered_from_faq else m.status if m.status != "complete" else m.provider or "model"
        for m in answers
    )
    assert {"faq", "fallback_reply", "offline", "openai", "failed", "incomplete"} <= set(kinds)
    assert messages.filter(role="user", status="failed", error_code="rate_limited").exists()
    assert answers.exclude(feedback="").exists() and answers.filter(cost_usd__gt=0).exists()
    assert "Wrote 2,001 messages in 400 conversations" in capsys.readouterr().out


def test_new_organizations_get_bots_and_a_long_tail_of_traffic():
    call_command("seed_traffic", organizations=5, messages=3_000, conversations=600, days=10)
    seeded = Organization.objects.filter(name__startswith="Seeded Outfitters")
    assert seeded.count() == 5 and Bot.objects.filter(organization__in=seeded).count() >= 5
    sizes = sorted(Message.objects.filter(organization__in=seeded).values_list("organization_id", flat=True))
    per_org = Counter(sizes).most_common()
    assert sum(n for _, n in per_org) == 3_000 and per_org[0][1] > 2 * per_org[-1][1]


def test_without_a_target_the_command_refuses():
    with pytest.raises(CommandError):
        call_command("seed_traffic")
    with pytest.raises(CommandError):
        call_command("seed_traffic", organization="no-such-organization")
