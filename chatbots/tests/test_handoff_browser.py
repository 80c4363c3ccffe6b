"""Human handoff in two real Chromium pages against a live Parlor (Daphne subprocess, Redis channel layer):
a visitor asks for a person in the chat, the operator sees it live in the admin's inbox, takes it, types
and replies; the visitor sees the reply under the operator's name; the operator hands back, and the bot
answers again. Screenshots of both sides go to test-artifacts/."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client

from accounts.tests.factories import make_organization, owner_of
from chatbots.models import Bot, Conversation, HandoffStatus, Message, MessageRole
from chatbots.testing import LiveParlor, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_visitor_is_handed_to_a_person_and_back_to_the_bot(
    live_parlor: LiveParlor, new_page: Callable[..., Any]
) -> None:
    organization = make_organization(name="Acme Outdoor")
    anna = owner_of(organization)
    anna.full_name = "Anna Berg"
    anna.save()
    bot = Bot.objects.create(
        organization=organization, name="Acme helper", widget_title="Acme Outdoor", handoff_enabled=True,
        fallback_reply="I cannot answer that yet.",
    )  # fmt: skip

    # The operator has the inbox open: the live socket counts her online.
    client = Client()
    client.force_login(anna)
    operator = new_page(viewport={"width": 1400, "height": 1000})
    operator.context.add_cookies(
        [{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": live_parlor.url}]
    )
    operator.goto(f"{live_parlor.url}/admin/chatbots/conversation/")
    operator.wait_for_selector("html[data-handoff-socket='ready']")

    visitor = new_page()
    visitor.goto(f"{live_parlor.url}/chat/{bot.public_id}/")
    visitor.wait_for_selector(".pc-status[data-state='online']")
    visitor.get_by_role("button", name="Talk to a person").click()
    visitor.wait_for_selector(".pc-system:has-text('A person will join')")
    assert visitor.locator(".pc-msg--assistant:not(.pc-msg--greeting)").count() == 0  # the bot kept quiet
    conversation = Conversation.objects.get(bot=bot)
    assert conversation.handoff_status == HandoffStatus.WAITING

    # The inbox lists it at once; the operator opens it and takes it.
    operator.wait_for_selector(f"[data-handoff-conversation='{conversation.pk}']")
    screenshot(operator, "handoff-inbox.png")
    operator.locator(f"[data-handoff-conversation='{conversation.pk}'] a").click()
    operator.wait_for_selector("html[data-handoff-socket='ready']")
    operator.get_by_role("button", name="Take the conversation").click()
    visitor.wait_for_selector(".pc-system:has-text('Anna Berg joined the conversation.')")

    # Typing both ways, then her reply under her name.
    operator.locator("[data-reply]").fill("Hello, Anna here. ")
    visitor.wait_for_selector(".pc-typing-note:has-text('Anna Berg is typing')")
    visitor.fill(".pc-input", "My tent has a hole")
    operator.wait_for_selector("[data-typing]:has-text('The visitor is typing')")
    operator.locator("[data-reply]").fill("Hello, Anna here. How can I help?")
    operator.locator("[data-reply]").press("Enter")
    reply = visitor.locator(".pc-msg--operator").last
    reply.wait_for()
    assert "Hello, Anna here. How can I help?" in reply.inner_text()
    assert reply.locator(".pc-author").inner_text() == "Anna Berg"

    # The visitor's message reaches her page live, and is not answered by the bot.
    visitor.press(".pc-input", "Enter")
    operator.wait_for_selector(".pt-row.pt-user:has-text('My tent has a hole')")
    screenshot(operator, "handoff-operator.png")
    screenshot(visitor, "handoff-visitor.png")

    # Handed back: the bot answers again.
    operator.get_by_role("button", name="Hand back to the bot").click()
    visitor.wait_for_selector(".pc-system:has-text('with the assistant again')")
    visitor.fill(".pc-input", "Do you rent kayaks?")
    visitor.press(".pc-input", "Enter")
    visitor.wait_for_selector(".pc-msg--assistant:has-text('I cannot answer that yet.')", timeout=30000)

    roles = list(
        Message.objects.filter(conversation=conversation).order_by("id").values_list("role", flat=True)
    )
    assert roles == ["user", "operator", "user", "user", "assistant"]
    assert Message.objects.get(conversation=conversation, role=MessageRole.OPERATOR).operator_id == anna.pk
