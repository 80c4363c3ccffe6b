"""Human handoff in the admin: the inbox's badge and filter, the transcript with operators' replies and the
operator's panel, a member's own notification settings, and the bot's escalation settings in its form."""

from __future__ import annotations

import pytest
from django.utils import timezone

from accounts.models import Membership, Role
from accounts.tests.factories import add_member, make_organization, make_user
from chatbots.models import HandoffStatus, MessageRole
from chatbots.tests.factories import make_bot, make_conversation, make_message

pytestmark = pytest.mark.django_db

INBOX = "/admin/chatbots/conversation/"
SETTINGS = "/admin/chatbots/conversation/handoff-notifications/"


@pytest.fixture
def member(client):
    organization = make_organization(name="Acme")
    user = add_member(organization=organization, role=Role.MEMBER, user=make_user(full_name="Mia Member"))
    client.force_login(user)
    client.organization, client.user = organization, user
    return client


def _conversation(bot, question: str, **handoff):
    conversation = make_conversation(bot=bot, visitor_id=f"v-{question[:6]}", **handoff)
    make_message(conversation=conversation, text=question)
    return conversation


def test_the_inbox_badges_and_filters_conversations_handed_to_a_person(member) -> None:
    bot = make_bot(organization=member.organization)
    now = timezone.now()
    waiting = _conversation(
        bot, "Waiting one", handoff_status=HandoffStatus.WAITING, handoff_requested_at=now
    )
    taken = _conversation(bot, "Taken one", handoff_status=HandoffStatus.TAKEN, handoff_requested_at=now)
    back = _conversation(bot, "Handed back", handoff_requested_at=now)  # with the bot again
    plain = _conversation(bot, "Only the bot")

    body = member.get(INBOX).content.decode()
    assert body.count("Waiting for a person") >= 1 and "With a person" in body and "Handed over" in body

    def listed(value: str) -> set:
        response = member.get(INBOX, {"handoff": value})
        assert response.status_code == 200
        return {c.pk for c in response.context["cl"].result_list}

    assert listed("waiting") == {waiting.pk}
    assert listed("taken") == {taken.pk}
    assert listed("any") == {waiting.pk, taken.pk, back.pk}
    assert plain.pk not in listed("any")


def test_the_transcript_shows_an_operators_reply_with_the_name_and_the_operators_panel(member) -> None:
    bot = make_bot(organization=member.organization)
    conversation = _conversation(
        bot, "I need a person", handoff_status=HandoffStatus.TAKEN, handoff_requested_at=timezone.now(),
        handoff_operator=member.user,
    )  # fmt: skip
    make_message(
        conversation=conversation, role=MessageRole.OPERATOR, text="Mia here, hello!", operator=member.user,
        operator_name="Mia Member",
    )  # fmt: skip
    body = member.get(f"{INBOX}{conversation.pk}/change/").content.decode()
    assert 'class="pt-row pt-operator"' in body and "Mia here, hello!" in body
    assert '<div class="pt-author">Mia Member</div>' in body
    assert f'data-conversation-id="{conversation.pk}"' in body and 'data-status="taken"' in body
    assert f'data-operator-id="{member.user.pk}"' in body and "Hand back to the bot" in body


def test_another_organizations_conversation_page_is_not_found(member) -> None:
    other = make_bot(organization=make_organization())
    conversation = _conversation(other, "Elsewhere", handoff_status=HandoffStatus.WAITING)
    assert member.get(f"{INBOX}{conversation.pk}/change/").status_code in (302, 404)


def test_a_member_chooses_their_own_handoff_notifications(member) -> None:
    page = member.get(SETTINGS)
    assert page.status_code == 200 and "E-mail me when a visitor asks for a person" in page.content.decode()
    response = member.post(SETTINGS, {"browser": "on"})
    assert response.status_code == 302
    membership = Membership.objects.get(user=member.user, organization=member.organization)
    assert membership.notify_handoff_email is False and membership.notify_handoff_browser is True


def test_the_handoff_socket_script_is_on_every_admin_page(member) -> None:
    assert "chatbots/handoff_admin.js" in member.get("/admin/").content.decode()


def test_the_bot_form_has_the_handoff_settings_in_their_own_tab(client) -> None:
    organization = make_organization()
    owner = organization.memberships.get(role=Role.OWNER).user
    client.force_login(owner)
    bot = make_bot(organization=organization)
    body = client.get(f"/admin/chatbots/bot/{bot.pk}/change/").content.decode()
    for field in ("handoff_enabled", "handoff_after_fallback", "handoff_after_thumbs_down"):
        assert f'name="{field}"' in body
    assert "People" in body
