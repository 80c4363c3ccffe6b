"""The inbox's per-conversation summary (title, count, badges, search document) stays equal to what the
conversation's messages say, whichever service wrote them: storing messages, refusing one, rating and
withdrawing a rating, retention removing old messages, erasure."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from chatbots.conversation_summary import conversation_summaries_forget, conversation_summaries_rebuild
from chatbots.models import Conversation, Message, MessageRole, MessageStatus
from chatbots.retention import conversations_expire
from chatbots.selectors import (
    conversations_search,
    conversations_unanswered,
    conversations_with_failure,
    conversations_with_feedback,
)
from chatbots.services import (
    AnswerRecord,
    assistant_message_create,
    message_feedback_set,
    user_message_create,
    user_message_refuse,
)
from chatbots.tests.factories import make_bot

pytestmark = pytest.mark.django_db

SUMMARY = ("first_question", "message_count", "has_thumbs_down", "has_unanswered", "has_failure")
SOURCE = {"source_id": 1, "title": "Shipping", "url": None, "page": None, "snippet": "Parcels ship daily."}


def _summary(conversation: Conversation) -> tuple:
    return Conversation.objects.filter(pk=conversation.pk).values_list(*SUMMARY, "search_document").get()


def _as_rebuilt(conversation: Conversation) -> tuple:
    """What a recomputation from the messages gives (rolled back, so the stored summary is untouched)."""
    before = _summary(conversation)
    conversation_summaries_rebuild(conversation_ids=[conversation.pk])
    rebuilt = _summary(conversation)
    Conversation.objects.filter(pk=conversation.pk).update(
        **dict(zip(SUMMARY, before[:-1], strict=True)), search_document=before[-1]
    )
    return rebuilt


def _ask(bot, text: str, conversation: Conversation | None = None) -> Message:
    return user_message_create(
        bot=bot, conversation_id=str(conversation.pk) if conversation else None, channel="widget",
        visitor_id="visitor-1", visitor_attributes={}, text=text,
    ).message  # fmt: skip


def _answer(conversation: Conversation, text: str, **fields) -> Message:
    record = AnswerRecord(text=text, **fields)
    return assistant_message_create(
        conversation_id=conversation.pk, organization_id=conversation.organization_id, record=record
    )


def _search(conversation: Conversation, text: str) -> bool:
    found = conversations_search(
        Conversation.objects.all(), text=text, organization_id=conversation.organization_id
    )
    return found.filter(pk=conversation.pk).exists()


def test_storing_messages_keeps_title_count_badges_and_search_words_as_the_messages_say() -> None:
    bot = make_bot()
    question = _ask(bot, "Where is my parcel?")
    conversation = question.conversation
    _answer(conversation, "It ships tomorrow from Hamburg.", sources=[SOURCE], provider="openai")
    assert _summary(conversation)[:5] == ("Where is my parcel?", 2, False, False, False)

    _ask(bot, "And do you sell umbrellas?", conversation)
    _answer(conversation, "Sorry, I don't know.", provider="fallback_reply")
    assert _summary(conversation)[:5] == ("Where is my parcel?", 4, False, True, False)

    _ask(bot, "Hello?", conversation)
    _answer(conversation, "", status=MessageStatus.FAILED, error_code="provider_error")
    assert _summary(conversation)[:5] == ("Where is my parcel?", 6, False, True, True)
    assert _summary(conversation) == _as_rebuilt(conversation)

    # Words of both roles, from any message, are found; words never written are not.
    assert _search(conversation, "hamburg") and _search(conversation, "umbrellas parcel")
    assert _search(conversation, '"ships tomorrow"') and not _search(conversation, "tents")
    assert list(conversations_unanswered(Conversation.objects.all())) == [conversation]
    assert list(conversations_with_failure(Conversation.objects.all())) == [conversation]


def test_an_answer_without_sources_is_unanswered_and_a_refused_question_is_a_failure() -> None:
    bot = make_bot()
    conversation = _ask(bot, "Hi").conversation
    _answer(conversation, "Hello! Ask me anything.", sources=[])
    refused = _ask(bot, "Spam " * 3, conversation)
    user_message_refuse(message_id=refused.pk, code="conversation_busy")

    assert _summary(conversation)[:5] == ("Hi", 3, False, True, True)
    assert _summary(conversation) == _as_rebuilt(conversation)


def test_rating_down_and_withdrawing_it_sets_and_clears_the_thumbs_down_badge() -> None:
    bot = make_bot()
    conversation = _ask(bot, "Where is my parcel?").conversation
    first = _answer(conversation, "It ships tomorrow.", sources=[SOURCE])
    second = _answer(conversation, "Really, tomorrow.", sources=[SOURCE])
    down = conversations_with_feedback(Conversation.objects.all(), value="down")

    message_feedback_set(conversation=conversation, message_id=first.pk, value="down")
    message_feedback_set(conversation=conversation, message_id=second.pk, value="down")
    assert list(down.all()) == [conversation]
    message_feedback_set(conversation=conversation, message_id=first.pk, value="up")
    assert list(down.all()) == [conversation]  # the other answer is still rated down
    message_feedback_set(conversation=conversation, message_id=second.pk, value="")
    assert list(down.all()) == []
    assert _summary(conversation) == _as_rebuilt(conversation)


def test_retention_that_keeps_a_conversation_updates_its_summary_from_the_messages_left(
    settings, monkeypatch
) -> None:
    bot = make_bot()
    conversation = _ask(bot, "Where is my old parcel?").conversation
    _answer(conversation, "Sorry, I don't know.", provider="fallback_reply")
    old = timezone.now() - dt.timedelta(days=40)
    Message.objects.filter(conversation=conversation).update(created_at=old)
    Conversation.objects.filter(pk=conversation.pk).update(last_message_at=old)
    settings.RETENTION_BATCH_PAUSE_MS = 1
    written = []

    def visitor_writes_meanwhile(seconds: float) -> None:
        # Between retention's batches the visitor comes back: the conversation is kept, its old messages
        # are deleted all the same.
        if not written:
            written.append(_ask(bot, "Any news about the umbrella?", conversation))
            _answer(conversation, "It ships today.", sources=[SOURCE])

    monkeypatch.setattr("chatbots.retention.time.sleep", visitor_writes_meanwhile)
    result = conversations_expire(bot_id=bot.pk, cutoff=timezone.now() - dt.timedelta(days=30))

    assert result.conversations == 0 and result.messages == 2
    assert _summary(conversation)[:5] == ("Any news about the umbrella?", 2, False, False, False)
    assert not _search(conversation, "parcel") and _search(conversation, "umbrella")
    assert _summary(conversation) == _as_rebuilt(conversation)


def test_erasure_blanks_the_copies_of_message_text_before_the_messages_go() -> None:
    bot = make_bot()
    conversation = _ask(bot, "My loyalty number is QX-4471").conversation
    assert _search(conversation, "loyalty")

    conversation_summaries_forget(conversation_ids=[conversation.pk])

    assert _summary(conversation)[0] == "" and _summary(conversation)[-1] is None
    assert not _search(conversation, "loyalty")


def test_rebuild_recomputes_every_conversation_of_an_organization_from_its_messages() -> None:
    bot = make_bot()
    conversation = _ask(bot, "Where is my parcel?").conversation
    answer = _answer(conversation, "Sorry.", provider="fallback_reply")
    Message.objects.filter(pk=answer.pk).update(feedback="down", status=MessageStatus.INCOMPLETE)
    Conversation.objects.filter(pk=conversation.pk).update(
        first_question="", message_count=0, has_unanswered=False, search_document=None
    )

    assert conversation_summaries_rebuild(organization_id=bot.organization_id) == 1
    assert _summary(conversation)[:5] == ("Where is my parcel?", 2, True, False, True)
    assert _search(conversation, "sorry")
    assert Message.objects.filter(conversation=conversation, role=MessageRole.USER).count() == 1
