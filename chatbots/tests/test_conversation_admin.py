from __future__ import annotations

import pytest

from accounts.models import Role
from accounts.tests.factories import add_member, make_organization
from chatbots.models import Conversation, Message, MessageRole
from chatbots.tests.factories import make_bot, make_conversation, make_message

pytestmark = pytest.mark.django_db


def _conversation(organization) -> Conversation:
    bot = make_bot(organization=organization, name="Helper")
    conversation = make_conversation(bot=bot, visitor_id="visitor-1")
    make_message(conversation=conversation, role=MessageRole.USER, text="Where is my parcel?")
    make_message(conversation=conversation, role=MessageRole.ASSISTANT, text="It ships tomorrow.", feedback="up",
                 sources=[{"title": "Shipping FAQ", "url": None, "page": None}])  # fmt: skip
    return conversation


def test_member_reads_transcript_but_cannot_delete_it(client) -> None:
    organization = make_organization(name="Acme")
    conversation = _conversation(organization)
    member = add_member(organization=organization, role=Role.MEMBER)
    client.force_login(member)

    listing = client.get("/admin/chatbots/conversation/")
    assert listing.status_code == 200 and "Helper" in listing.content.decode()
    page = client.get(f"/admin/chatbots/conversation/{conversation.pk}/change/")
    body = page.content.decode()
    assert page.status_code == 200
    assert "Where is my parcel?" in body and "It ships tomorrow." in body and "Shipping FAQ" in body
    assert (
        client.post(f"/admin/chatbots/conversation/{conversation.pk}/delete/", {"post": "yes"}).status_code
        == 403
    )
    assert Conversation.objects.filter(pk=conversation.pk).exists()


def test_admin_deletes_a_conversation_with_its_messages(client) -> None:
    organization = make_organization(name="Acme")
    conversation = _conversation(organization)
    client.force_login(add_member(organization=organization, role=Role.ADMIN))
    response = client.post(f"/admin/chatbots/conversation/{conversation.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert not Conversation.objects.exists() and not Message.objects.exists()


def test_search_finds_conversations_by_what_was_said(client) -> None:
    organization = make_organization(name="Acme")
    _conversation(organization)
    client.force_login(add_member(organization=organization, role=Role.MEMBER))
    assert client.get("/admin/chatbots/conversation/?q=parcel").context["cl"].result_count == 1
    assert client.get("/admin/chatbots/conversation/?q=umbrella").context["cl"].result_count == 0
