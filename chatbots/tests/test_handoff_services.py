"""Human handoff's services on the real database and Redis: each transition, the race of two operators,
operator replies as messages (transcripts, exports, analytics, erasure), opening hours, presence and the
e-mail to members."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
from django.core import mail
from django.core.exceptions import ValidationError
from django.db import close_old_connections

from accounts.models import Membership
from accounts.selectors import organization_is_open
from accounts.tests.factories import add_member, make_organization, make_user, owner_of
from analytics.models import DailyStat
from analytics.services import daily_rollup
from chatbots.exceptions import HandoffNotAllowed
from chatbots.exports import _message_fields
from chatbots.handoff import (
    HandoffReason,
    handoff_close,
    handoff_release,
    handoff_request,
    handoff_take,
    operator_message_send,
    operator_presence_leave,
    operator_presence_touch,
    operators_online,
    someone_available,
)
from chatbots.handoff_notify import handoff_notify_operators
from chatbots.models import Conversation, HandoffStatus, Message, MessageRole
from chatbots.selectors import conversation_recent_turns
from chatbots.services import message_feedback_set
from chatbots.tests.factories import make_bot, make_conversation, make_message

pytestmark = pytest.mark.django_db


@pytest.fixture
def conversation() -> Conversation:
    organization = make_organization(name="Acme")
    bot = make_bot(organization=organization, name="Acme helper", handoff_enabled=True)
    conversation = make_conversation(bot=bot, visitor_id="v-1")
    make_message(conversation=conversation, text="I want to talk to a person")
    return conversation


def test_a_request_makes_the_conversation_wait_with_its_time_and_reason(conversation) -> None:
    state = handoff_request(conversation=conversation, reason=HandoffReason.VISITOR)
    conversation.refresh_from_db()
    assert state.status == conversation.handoff_status == HandoffStatus.WAITING
    assert conversation.handoff_reason == "visitor" and conversation.handoff_requested_at is not None
    assert conversation.handoff_taken_at is None and conversation.handoff_operator is None


def test_asking_again_while_waiting_changes_nothing(conversation) -> None:
    handoff_request(conversation=conversation)
    first = Conversation.objects.get(pk=conversation.pk).handoff_requested_at
    handoff_request(conversation=conversation, reason=HandoffReason.FALLBACK)
    again = Conversation.objects.get(pk=conversation.pk)
    assert again.handoff_requested_at == first and again.handoff_reason == "visitor"


def test_an_operator_takes_replies_hands_back_and_the_times_are_kept(conversation) -> None:
    operator = owner_of(conversation.organization)
    operator.full_name = "Anna Berg"
    operator.save()
    handoff_request(conversation=conversation)
    taken = handoff_take(conversation=conversation, operator=operator)
    assert taken.handoff_status == HandoffStatus.TAKEN and taken.handoff_operator == operator
    assert taken.handoff_taken_at is not None

    reply = operator_message_send(conversation=conversation, operator=operator, text="Hi, Anna here.")
    assert reply.role == MessageRole.OPERATOR and reply.operator == operator
    assert reply.operator_name == "Anna Berg" and reply.organization_id == conversation.organization_id

    released = handoff_release(conversation=conversation, operator=operator)
    assert released.handoff_status == HandoffStatus.NONE and released.handoff_ended_at is not None
    assert released.handoff_requested_at is not None  # the inbox still shows it was handed over
    with pytest.raises(HandoffNotAllowed):
        operator_message_send(conversation=conversation, operator=operator, text="Still there?")


def test_closing_ends_the_handoff_and_a_new_request_starts_over(conversation) -> None:
    operator = owner_of(conversation.organization)
    handoff_request(conversation=conversation)
    handoff_take(conversation=conversation, operator=operator)
    closed = handoff_close(conversation=conversation, operator=operator)
    assert closed.handoff_status == HandoffStatus.CLOSED
    with pytest.raises(HandoffNotAllowed):
        handoff_close(conversation=conversation, operator=operator)
    handoff_request(conversation=conversation, reason=HandoffReason.THUMBS_DOWN)
    again = Conversation.objects.get(pk=conversation.pk)
    assert again.handoff_status == HandoffStatus.WAITING and again.handoff_operator is None
    assert again.handoff_ended_at is None and again.handoff_reason == "thumbs_down"


def test_only_the_operator_who_took_it_replies(conversation) -> None:
    first = owner_of(conversation.organization)
    second = add_member(organization=conversation.organization)
    handoff_request(conversation=conversation)
    with pytest.raises(HandoffNotAllowed):  # not taken yet
        operator_message_send(conversation=conversation, operator=first, text="Hello")
    handoff_take(conversation=conversation, operator=first)
    with pytest.raises(HandoffNotAllowed):
        handoff_take(conversation=conversation, operator=second)
    with pytest.raises(HandoffNotAllowed):
        operator_message_send(conversation=conversation, operator=second, text="Me too")
    assert not Message.objects.filter(role=MessageRole.OPERATOR).exists()


@pytest.mark.django_db(transaction=True)  # two threads, two connections: they must see committed rows
def test_two_operators_taking_at_once_one_wins(conversation) -> None:
    operators = [owner_of(conversation.organization), add_member(organization=conversation.organization)]
    handoff_request(conversation=conversation)
    start = threading.Barrier(len(operators))
    won, lost = [], []

    def take(operator) -> None:
        try:
            start.wait()
            handoff_take(conversation=conversation, operator=operator)
            won.append(operator.pk)
        except HandoffNotAllowed:
            lost.append(operator.pk)
        finally:
            close_old_connections()

    threads = [threading.Thread(target=take, args=(operator,)) for operator in operators]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(won) == 1 and len(lost) == 1
    assert Conversation.objects.get(pk=conversation.pk).handoff_operator_id == won[0]


def test_a_thumbs_down_escalates_only_when_the_bot_says_so(conversation) -> None:
    answer = make_message(conversation=conversation, role=MessageRole.ASSISTANT, text="We sell boots.")
    message_feedback_set(conversation=conversation, message_id=answer.pk, value="down")
    assert Conversation.objects.get(pk=conversation.pk).handoff_status == HandoffStatus.NONE

    conversation.bot.handoff_after_thumbs_down = True
    conversation.bot.save()
    conversation = Conversation.objects.select_related("bot").get(pk=conversation.pk)
    message_feedback_set(conversation=conversation, message_id=answer.pk, value="up")
    assert Conversation.objects.get(pk=conversation.pk).handoff_status == HandoffStatus.NONE
    message_feedback_set(conversation=conversation, message_id=answer.pk, value="down")
    escalated = Conversation.objects.get(pk=conversation.pk)
    assert escalated.handoff_status == HandoffStatus.WAITING and escalated.handoff_reason == "thumbs_down"


def test_operator_replies_are_kept_when_the_operator_leaves_and_read_as_the_assistant_by_the_model(
    conversation,
) -> None:
    operator = add_member(organization=conversation.organization, user=make_user(full_name="Ben Ode"))
    handoff_request(conversation=conversation)
    handoff_take(conversation=conversation, operator=operator)
    reply = operator_message_send(
        conversation=conversation, operator=operator, text="Ben here, how can I help?"
    )
    operator.delete()
    reply.refresh_from_db()
    assert reply.operator is None and reply.operator_name == "Ben Ode"  # SET_NULL, the name stays
    later = make_message(conversation=conversation, text="Thanks")
    turns = conversation_recent_turns(conversation_id=conversation.pk, before_message_id=later.pk, turns=3)
    assert [turn["role"] for turn in turns] == ["user", "assistant"]
    assert (
        _message_fields(reply)["role"] == "operator" and _message_fields(reply)["operator_name"] == "Ben Ode"
    )


def test_analytics_count_a_visitors_question_but_never_an_operator_reply_as_an_answer(conversation) -> None:
    operator = owner_of(conversation.organization)
    handoff_request(conversation=conversation)
    handoff_take(conversation=conversation, operator=operator)
    operator_message_send(conversation=conversation, operator=operator, text="Hello from a person")
    daily_rollup(day=Message.objects.first().created_at.date(), organization_id=conversation.organization_id)
    stat = DailyStat.objects.get(organization_id=conversation.organization_id)
    assert stat.questions == 1
    assert stat.answers == 0 and stat.failed == 0 and stat.incomplete == 0


def test_opening_hours_in_the_organizations_time_zone() -> None:
    organization = make_organization()
    assert organization_is_open(organization=organization)  # no hours: always open
    organization.opening_hours = {"mon": [["09:00", "17:00"]], "sat": [["10:00", "12:00"]]}
    organization.opening_hours_timezone = "Europe/Berlin"
    organization.full_clean()
    monday_morning_utc = dt.datetime(2026, 1, 5, 7, 30, tzinfo=dt.UTC)  # 08:30 in Berlin
    assert not organization_is_open(organization=organization, at=monday_morning_utc)
    assert organization_is_open(organization=organization, at=monday_morning_utc + dt.timedelta(hours=1))
    assert not organization_is_open(organization=organization, at=dt.datetime(2026, 1, 6, 10, tzinfo=dt.UTC))
    assert organization_is_open(organization=organization, at=dt.datetime(2026, 1, 10, 9, 59, tzinfo=dt.UTC))


@pytest.mark.parametrize(
    ("hours", "zone"),
    [({"monday": [["09:00", "17:00"]]}, ""), ({"mon": [["17:00", "09:00"]]}, ""), ({"mon": [["9", "17"]]}, ""),
     ({}, "Mars/Olympus")],
)  # fmt: skip
def test_bad_opening_hours_are_refused(hours, zone) -> None:
    organization = make_organization()
    organization.opening_hours, organization.opening_hours_timezone = hours, zone
    with pytest.raises(ValidationError):
        organization.full_clean()


def test_someone_is_available_only_with_an_operator_online_inside_opening_hours() -> None:
    organization = make_organization()
    assert not someone_available(organization=organization)
    operator_presence_touch(organization_id=organization.pk, channel_name="specific.a!1")
    operator_presence_touch(organization_id=organization.pk, channel_name="specific.a!2")
    assert operators_online(organization_id=organization.pk) == 2
    assert someone_available(organization=organization)
    organization.opening_hours = {"mon": [["00:00", "00:01"]]}  # as good as always closed
    assert not someone_available(organization=organization)
    operator_presence_leave(organization_id=organization.pk, channel_name="specific.a!1")
    operator_presence_leave(organization_id=organization.pk, channel_name="specific.a!2")
    assert operators_online(organization_id=organization.pk) == 0


def test_presence_expires_without_a_refresh(settings) -> None:
    settings.HANDOFF_PRESENCE_TTL_SECONDS = -1  # already expired when written: a socket that went silent
    organization = make_organization()
    operator_presence_touch(organization_id=organization.pk, channel_name="specific.a!1")
    assert operators_online(organization_id=organization.pk) == 0


def test_members_who_want_it_get_an_email_while_the_conversation_waits(conversation, settings) -> None:
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    owner = owner_of(conversation.organization)
    quiet = add_member(organization=conversation.organization)
    Membership.objects.filter(user=quiet).update(notify_handoff_email=False)
    outsider = make_organization()  # another organization's owner hears nothing
    handoff_request(conversation=conversation)

    assert handoff_notify_operators(conversation_id=str(conversation.pk)) == 1
    assert [m.to for m in mail.outbox] == [[owner.email]]
    assert owner_of(outsider).email not in mail.outbox[0].to
    assert "I want to talk to a person" in mail.outbox[0].body
    assert f"/admin/chatbots/conversation/{conversation.pk}/change/" in mail.outbox[0].body

    handoff_take(conversation=conversation, operator=owner)
    assert handoff_notify_operators(conversation_id=str(conversation.pk)) == 0  # taken: no stale alert
    assert len(mail.outbox) == 1
