"""The widget's lead form in a real browser against a live Parlor: asked after the visitor's first message
(skippable), asked before chatting (required: no chatting until it is sent), and opened by the chat itself
when nobody is available. What the visitor gives is stored as a lead and names them in the inbox."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from accounts.models import Organization
from chatbots.identity import bot_identity_secret_rotate, identity_hash
from chatbots.leads import CONSENT_DEFAULTS
from chatbots.models import Bot, Conversation, Lead, LeadReason
from chatbots.testing import HostPages, LiveParlor, host_page_html, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def make_bot(**fields: Any) -> Bot:
    organization, _ = Organization.objects.get_or_create(slug="acme-leads", defaults={"name": "Acme Outdoor"})
    return Bot.objects.create(
        organization=organization, name="Acme helper", widget_title="Acme Outdoor", **fields
    )


def open_widget(page: Any) -> Any:
    page.locator("[data-parlor-widget]").locator("button.l").click()
    handle = page.locator("[data-parlor-widget] iframe").element_handle()
    for _ in range(100):
        frame = handle.content_frame()
        if frame is not None and "/widget/" in frame.url:
            frame.wait_for_selector(".pc-status[data-state='online']")
            return frame
        page.wait_for_timeout(100)
    raise AssertionError("the widget frame did not load")


def ask(frame: Any, text: str) -> None:
    before = frame.locator(".pc-msg--assistant .pc-actions").count()
    frame.fill(".pc-input", text)
    frame.press(".pc-input", "Enter")
    frame.wait_for_function(
        f"() => document.querySelectorAll('.pc-msg--assistant .pc-actions').length > {before}", timeout=30000
    )


def fill_lead(form: Any, *, name: str, email: str) -> None:
    form.locator("input[name=name]").fill(name)
    form.locator("input[name=email]").fill(email)
    form.locator("input[name=consent]").check()
    form.locator("button[type=submit]").click()


def wait_for(page: Any, predicate: Callable[[], bool], what: str) -> None:
    for _ in range(150):  # a deadline for a loaded machine, not a timing assertion
        if predicate():
            return
        page.wait_for_timeout(100)
    raise AssertionError(f"timed out waiting for {what}")


def test_lead_form_after_a_message_before_chatting_and_when_nobody_is_available(
    live_parlor: LiveParlor, allowed_site: HostPages, new_page: Callable[..., Any]
) -> None:
    # After the first message, skippable: the form appears under the answer with "Skip".
    bot = make_bot(allowed_origins=[allowed_site.origin], lead_capture="after", lead_capture_after=1)
    page = new_page()
    page.goto(allowed_site.page("/after", host_page_html(live_parlor.url, bot.public_id)))
    frame = open_widget(page)
    assert frame.locator("[data-lead-form]").count() == 0
    ask(frame, "Do you ship tents to Norway?")
    form = frame.locator("[data-lead-form='after_messages']")
    form.wait_for()
    assert form.locator(".pc-lead-skip").is_visible()
    assert CONSENT_DEFAULTS["en"] in form.inner_text()
    form.locator("button[type=submit]").click()  # nothing filled in: the form says what is missing
    assert "valid e-mail" in form.locator(".pc-lead-error").inner_text()
    screenshot(page, "lead-form-after-message.png")
    fill_lead(form, name="Ada Lovelace", email="ada@example.com")
    form.wait_for(state="detached")
    wait_for(page, lambda: Lead.objects.filter(bot=bot).exists(), "the lead")
    lead = Lead.objects.get(bot=bot)
    assert (lead.name, lead.email, lead.reason) == (
        "Ada Lovelace",
        "ada@example.com",
        LeadReason.AFTER_MESSAGES,
    )
    assert lead.consent_given and lead.consent_text == CONSENT_DEFAULTS["en"]
    conversation = Conversation.objects.get(pk=lead.conversation_id)
    assert conversation.visitor_label == "Ada Lovelace"  # the inbox names the visitor

    # When nobody is available the chat opens the form itself, with a question field (never required).
    frame.evaluate("ParlorChat.openLeadForm({reason: 'nobody_available'})")
    nobody = frame.locator("[data-lead-form='nobody_available']")
    nobody.locator("textarea[name=message]").fill("Please call me about a group order.")
    assert nobody.locator("input[name=email]").input_value() == "ada@example.com"  # already known
    nobody.locator("input[name=consent]").check()
    nobody.locator("button[type=submit]").click()
    nobody.wait_for(state="detached")
    wait_for(page, lambda: Lead.objects.filter(bot=bot).count() == 2, "the second lead")
    assert Lead.objects.filter(
        reason=LeadReason.NOBODY_AVAILABLE, conversation=conversation
    ).get().message == ("Please call me about a group order.")

    # Before chatting, required, in German: no "skip", and the message box stays closed until it is sent.
    required = make_bot(
        allowed_origins=[allowed_site.origin],
        lead_capture="before",
        lead_capture_required=True,
        language="de",
    )
    page = new_page(locale="de-DE")
    page.goto(allowed_site.page("/before", host_page_html(live_parlor.url, required.public_id)))
    frame = open_widget(page)
    form = frame.locator("[data-lead-form='before_chat']")
    form.wait_for()
    assert form.locator(".pc-lead-skip").count() == 0
    assert CONSENT_DEFAULTS["de"] in form.inner_text()
    frame.fill(".pc-input", "Hallo?")
    assert frame.locator(".pc-send").is_disabled()
    screenshot(page, "lead-form-before-chat-required.png")
    fill_lead(form, name="Grace", email="grace@example.com")
    form.wait_for(state="detached")
    ask(frame, "Hallo, haben Sie Zelte?")
    wait_for(page, lambda: Conversation.objects.filter(bot=required).exists(), "the conversation")
    lead = Lead.objects.get(bot=required)
    assert lead.reason == LeadReason.BEFORE_CHAT and lead.consent_text == CONSENT_DEFAULTS["de"]
    conversation = Conversation.objects.get(bot=required)
    assert lead.conversation_id == conversation.pk
    assert conversation.visitor_attributes["email"] == "grace@example.com"


def test_signed_identity_from_the_host_page_names_the_verified_user_and_skips_the_form(
    live_parlor: LiveParlor, allowed_site: HostPages, new_page: Callable[..., Any]
) -> None:
    bot = make_bot(allowed_origins=[allowed_site.origin], lead_capture="before", lead_capture_required=True)
    user_hash = identity_hash(secret=bot_identity_secret_rotate(bot=bot), user_id="42")
    # The page identifies its signed-in user before the loader runs (the queue is replayed).
    identify = json.dumps(["identify", {"user_id": "42", "user_hash": user_hash, "email": "ada@example.com",
                                        "name": "Ada Lovelace"}])  # fmt: skip
    body = f"<script>window.Parlor = {{q: [{identify}]}};</script>"
    page = new_page()
    page.goto(allowed_site.page("/signed-in", host_page_html(live_parlor.url, bot.public_id, body=body)))
    frame = open_widget(page)
    frame.wait_for_function("() => !document.querySelector('[data-lead-form]')")
    ask(frame, "Where is my order?")
    wait_for(page, lambda: Conversation.objects.filter(bot=bot).exists(), "the conversation")
    conversation = Conversation.objects.get(bot=bot)
    assert conversation.visitor_id == "user:42"
    assert conversation.visitor_attributes["identity_verified"] is True
    assert conversation.visitor_label == "Ada Lovelace" and not Lead.objects.filter(bot=bot).exists()
