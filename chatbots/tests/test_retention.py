"""Retention: conversations older than the organization's (or the bot's) period are deleted by the beat job
in bounded batches; the default keeps them forever; the run is in the audit log, which expires too."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import AuditAction, AuditEvent
from accounts.tests.factories import make_organization, owner_of
from chatbots.models import Conversation, Message
from chatbots.retention import retention_run
from chatbots.tests.factories import make_bot, make_conversation, make_message

pytestmark = pytest.mark.django_db


def _conversation(bot, *, days_ago: int, messages: int = 3) -> Conversation:
    conversation = make_conversation(bot=bot)
    for i in range(messages):
        make_message(conversation=conversation, text=f"message {i}")
    Conversation.objects.filter(pk=conversation.pk).update(
        last_message_at=timezone.now() - timedelta(days=days_ago)
    )
    return conversation


def test_default_keeps_conversations_forever():
    bot = make_bot()
    ancient = _conversation(bot, days_ago=3650)
    result = retention_run()
    assert (result.conversations, result.messages) == (0, 0)
    assert Conversation.objects.filter(pk=ancient.pk).exists()


def test_organization_period_with_a_bot_override_deletes_in_batches(settings):
    settings.RETENTION_BATCH = 2  # several batches per conversation
    settings.RETENTION_BATCH_PAUSE_MS = 0
    organization = make_organization(name="Retains")
    organization.conversation_retention_days = 30
    organization.save()
    follows = make_bot(organization=organization, name="Follows the organization")
    shorter = make_bot(organization=organization, name="Shorter", retention_days=7)
    old = _conversation(follows, days_ago=31, messages=5)
    recent = _conversation(follows, days_ago=29)
    week_old = _conversation(shorter, days_ago=8)
    fresh = _conversation(shorter, days_ago=1)
    elsewhere = _conversation(make_bot(name="Other org keeps forever"), days_ago=400)

    result = retention_run()

    assert (result.conversations, result.messages) == (2, 8)
    assert set(Conversation.objects.values_list("pk", flat=True)) == {recent.pk, fresh.pk, elsewhere.pk}
    assert not Message.objects.filter(conversation_id__in=[old.pk, week_old.pk]).exists()
    run = AuditEvent.objects.get(organization=organization, action=AuditAction.RETENTION_RUN)
    assert run.detail == {"conversations": 2, "messages": 8}
    assert retention_run().conversations == 0  # nothing left to do on the next run


def test_audit_events_older_than_the_audit_period_go_too():
    organization = make_organization(name="Short audit")
    organization.audit_retention_days = 10
    organization.save()
    owner = owner_of(organization)
    from accounts.audit import audit_record

    old = audit_record(organization=organization, action=AuditAction.SIGN_IN, actor=owner)
    AuditEvent.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=11))
    new = audit_record(organization=organization, action=AuditAction.SIGN_IN, actor=owner)
    assert retention_run().audit_events == 1
    assert list(AuditEvent.objects.filter(organization=organization).values_list("pk", flat=True)) == [new.pk]


def test_retention_is_shown_as_forever_in_the_admin(client):
    organization = make_organization(name="Shown")
    client.force_login(owner_of(organization))
    listing = client.get("/admin/accounts/organization/")
    assert b"Forever" in listing.content
    bot = make_bot(organization=organization)
    page = client.get(f"/admin/chatbots/bot/{bot.pk}/change/")
    assert b"conversations are kept forever" in page.content
