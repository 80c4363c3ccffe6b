"""Leads in the admin and in privacy: replies by e-mail (Django's locmem outbox), the list and its CSV export,
tenant isolation, export and erasure of a visitor's leads, retention, and the bot's identity secret."""

from __future__ import annotations

import csv
import io
import json
import zipfile
from datetime import timedelta
from email.utils import parseaddr

import pytest
from django.core import mail
from django.utils import timezone

from accounts.models import Role
from accounts.tests.factories import add_member, make_organization, owner_of
from chatbots.leads import CONSENT_DEFAULTS, lead_create
from chatbots.models import Conversation, Lead, LeadReason, LeadReply, LeadStatus, SubjectLookup
from chatbots.privacy import subject_request_create, subject_request_run
from chatbots.retention import retention_run
from chatbots.tests.factories import make_bot, make_conversation, make_message

pytestmark = pytest.mark.django_db


@pytest.fixture
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


def _lead(
    bot, *, email: str = "ada@example.com", visitor_id: str = "visitor-ada-0001", conversation=None, **kw
):
    return lead_create(
        bot=bot, email=email, name=kw.pop("name", "Ada"), message=kw.pop("message", "Do you ship to Mars?"),
        reason=kw.pop("reason", LeadReason.NOBODY_AVAILABLE), consent_given=True,
        consent_text=CONSENT_DEFAULTS["en"], visitor_id=visitor_id, conversation=conversation,
    )  # fmt: skip


def test_member_replies_to_a_lead_by_email_from_the_organizations_name(client, settings) -> None:
    settings.DEFAULT_FROM_EMAIL = "Parlor <no-reply@parlor.example>"
    organization = make_organization(name="Acme Outdoor")
    lead = _lead(make_bot(organization=organization))
    member = add_member(organization=organization, role=Role.MEMBER)
    client.force_login(member)
    page = client.get(f"/admin/chatbots/lead/{lead.pk}/change/")
    assert page.status_code == 200 and "Do you ship to Mars?" in page.content.decode()

    response = client.post(
        f"/admin/chatbots/lead/{lead.pk}/reply/", {"subject": "About Mars", "body": "Yes, next week."}
    )
    assert response.status_code == 302
    [sent] = mail.outbox
    assert sent.to == ["ada@example.com"] and sent.subject == "About Mars"
    assert parseaddr(sent.from_email) == ("Acme Outdoor via Parlor", "no-reply@parlor.example")
    assert sent.reply_to == [member.email]
    assert "Yes, next week." in sent.body and "> Do you ship to Mars?" in sent.body
    reply = LeadReply.objects.get()
    assert (reply.lead_id, reply.sent_by_id, reply.to_email) == (lead.pk, member.pk, "ada@example.com")
    assert reply.sent_at is not None and reply.organization_id == organization.pk
    lead.refresh_from_db()
    assert lead.status == LeadStatus.REPLIED and lead.replied_at is not None
    assert "Yes, next week." in client.get(f"/admin/chatbots/lead/{lead.pk}/change/").content.decode()


def test_operator_replies_by_email_to_an_identified_visitors_conversation(client) -> None:
    organization = make_organization(name="Acme Outdoor")
    bot = make_bot(organization=organization)
    conversation = make_conversation(
        bot=bot, visitor_id="v-1", visitor_attributes={"email": "grace@example.com"}
    )
    make_message(conversation=conversation, text="Is the tent waterproof?")
    anonymous = make_conversation(bot=bot, visitor_id="v-2")
    client.force_login(owner_of(organization))
    page = client.get(f"/admin/chatbots/conversation/{conversation.pk}/change/").content.decode()
    assert "data-email-reply-form" in page and "grace@example.com" in page
    assert (
        "data-email-reply-form"
        not in client.get(f"/admin/chatbots/conversation/{anonymous.pk}/change/").content.decode()
    )

    client.post(
        f"/admin/chatbots/conversation/{conversation.pk}/email-reply/", {"subject": "", "body": "It is."}
    )
    client.post(
        f"/admin/chatbots/conversation/{anonymous.pk}/email-reply/", {"subject": "", "body": "Hello?"}
    )
    [sent] = mail.outbox
    assert sent.to == ["grace@example.com"] and sent.body == "It is."
    reply = LeadReply.objects.get()
    assert reply.conversation_id == conversation.pk and reply.lead_id is None
    assert "It is." in client.get(f"/admin/chatbots/conversation/{conversation.pk}/change/").content.decode()


def test_outsider_cannot_read_reply_to_or_export_another_organizations_leads(client) -> None:
    theirs = _lead(make_bot(organization=make_organization(name="Theirs")), email="secret@their.example")
    mine = make_organization(name="Mine")
    _lead(make_bot(organization=mine), email="mine@my.example")
    client.force_login(owner_of(mine))
    assert client.get(f"/admin/chatbots/lead/{theirs.pk}/change/").status_code == 404
    assert client.post(f"/admin/chatbots/lead/{theirs.pk}/reply/", {"body": "Hi"}).status_code == 404
    listing = client.get("/admin/chatbots/lead/").content.decode()
    exported = b"".join(client.get("/admin/chatbots/lead/export.csv").streaming_content).decode()
    assert "mine@my.example" in listing and "mine@my.example" in exported
    assert "secret@their.example" not in listing + exported
    assert mail.outbox == [] and not LeadReply.objects.exists()
    theirs.refresh_from_db()
    assert theirs.status == LeadStatus.NEW


def test_lead_list_filters_and_exports_what_it_shows_as_csv(client) -> None:
    organization = make_organization(name="Acme")
    bot = make_bot(organization=organization)
    replied = _lead(bot, email="replied@example.com", message='=HYPERLINK("http://evil")')
    Lead.objects.filter(pk=replied.pk).update(status=LeadStatus.REPLIED)
    _lead(bot, email="new@example.com")
    client.force_login(add_member(organization=organization, role=Role.MEMBER))
    assert client.get("/admin/chatbots/lead/?status__exact=new").context["cl"].result_count == 1
    response = client.get("/admin/chatbots/lead/export.csv?status__exact=replied")
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert [r["email"] for r in rows] == ["replied@example.com"]
    assert rows[0]["question"].startswith("'=") and rows[0]["consent_given"] == "yes"  # no formula runs


def test_export_and_erasure_find_leads_by_visitor_id_and_by_email(media) -> None:
    organization = make_organization(name="Acme")
    bot = make_bot(organization=organization)
    conversation = make_conversation(bot=bot, visitor_id="visitor-ada-0001")
    make_message(conversation=conversation, text="Anonymous question before the form")
    lead = _lead(bot)  # left before chatting: no conversation, only the visitor id and e-mail
    LeadReply.objects.create(organization=organization, bot=bot, lead=lead, to_email=lead.email, subject="Re",
                             body="Answer", sent_at=timezone.now())  # fmt: skip
    keep = _lead(bot, email="other@example.com", visitor_id="visitor-other-0002")

    export = subject_request_create(organization=organization, kind="export", lookup=SubjectLookup.EMAIL,
                                    value="ADA@example.com")  # fmt: skip
    subject_request_run(request_id=export.pk)
    export.refresh_from_db()
    with zipfile.ZipFile(export.file.path) as archive:
        data = json.loads(archive.read("data.json"))
    assert [r["email"] for r in data["other_records"]["chatbots.Lead"]] == ["ada@example.com"]  # once
    assert [r["body"] for r in data["other_records"]["chatbots.LeadReply"]] == ["Answer"]
    # Found by e-mail, the lead's visitor id brings the visitor's anonymous conversation along.
    assert [c["id"] for c in data["conversations"]] == [str(conversation.pk)]

    erase = subject_request_create(organization=organization, kind="erase", lookup=SubjectLookup.VISITOR_ID,
                                   value="visitor-ada-0001")  # fmt: skip
    subject_request_run(request_id=erase.pk)
    assert list(Lead.objects.all()) == [keep]
    assert not LeadReply.objects.exists() and not Conversation.objects.filter(pk=conversation.pk).exists()


def test_retention_deletes_leads_as_old_as_expired_conversations() -> None:
    organization = make_organization(name="Acme")
    organization.conversation_retention_days = 30
    organization.save(update_fields=["conversation_retention_days"])
    bot = make_bot(organization=organization)
    old, recent = _lead(bot, email="old@example.com"), _lead(bot, email="recent@example.com")
    Lead.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=31))
    result = retention_run()
    assert result.leads == 1 and list(Lead.objects.all()) == [recent]


def test_identity_secret_is_shown_to_owners_only_and_rotated_by_post(client) -> None:
    organization = make_organization(name="Acme")
    bot = make_bot(organization=organization)
    owner = owner_of(organization)
    client.force_login(owner)
    rotate = f"/admin/chatbots/bot/{bot.pk}/rotate-identity-secret/"
    assert client.get(rotate).status_code == 200 and bot.get_identity_secret() == ""  # GET only asks
    client.post(rotate)
    bot.refresh_from_db()
    first = bot.get_identity_secret()
    assert first.startswith("idsec_")
    assert first in client.get(f"/admin/chatbots/bot/{bot.pk}/change/").content.decode()
    client.post(rotate)
    bot.refresh_from_db()
    assert bot.get_identity_secret() not in ("", first)

    client.force_login(add_member(organization=organization, role=Role.MEMBER))
    page = client.get(f"/admin/chatbots/bot/{bot.pk}/change/").content.decode()
    assert bot.get_identity_secret() not in page and "owners and admins see it" in page
    assert client.post(rotate).status_code == 403
    outsider = make_organization(name="Outsider")
    client.force_login(owner_of(outsider))
    assert client.post(rotate).status_code == 404
    bot.refresh_from_db()
    assert bot.get_identity_secret() not in ("", first)
