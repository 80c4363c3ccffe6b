"""Conversation exports in S3-compatible object storage (a real S3 server on loopback): the file is written
to the bucket under its organization, downloaded through Parlor (never a public link), and removed when it
expires or its organization's files are deleted."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.deletion import organization_files_delete
from accounts.models import Role
from accounts.tests.factories import add_member, make_organization, owner_of
from chatbots.exports import (
    conversation_export_build,
    conversation_export_request,
    conversation_exports_purge,
)
from chatbots.models import ConversationExport, MessageRole
from chatbots.selectors import InboxFilters
from chatbots.tests.factories import make_bot, make_conversation, make_message

pytestmark = pytest.mark.django_db
EXPORTS = "/admin/chatbots/conversationexport/"


def exported(organization) -> ConversationExport:
    conversation = make_conversation(bot=make_bot(organization=organization), visitor_id="v-parcel")
    make_message(conversation=conversation, role=MessageRole.USER, text="Where is my parcel?")
    export = conversation_export_request(
        organization=organization, user=owner_of(organization), filters=InboxFilters(), format="jsonl"
    )
    return conversation_export_build(export_id=export.pk)


def test_an_export_is_written_to_the_bucket_and_downloaded_through_parlor(object_storage, client) -> None:
    organization = make_organization()
    export = exported(organization)
    assert object_storage.keys() == [export.file.name]
    assert export.file.name.startswith(f"exports/{organization.pk}/")
    assert b"Where is my parcel?" in object_storage.read(export.file.name)
    client.force_login(add_member(organization=organization, role=Role.ADMIN))
    response = client.get(f"{EXPORTS}{export.pk}/download/")
    assert response.status_code == 200 and response["Cache-Control"].startswith("private, no-store")
    assert b"Where is my parcel?" in b"".join(response.streaming_content)

    ConversationExport.objects.filter(pk=export.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert conversation_exports_purge() == 1
    assert object_storage.keys() == []


def test_deleting_an_organizations_files_removes_its_exports_only(object_storage) -> None:
    gone, stays = make_organization(name="Gone"), make_organization(name="Stays")
    exported(gone)
    kept = exported(stays)
    assert organization_files_delete(organization_id=gone.pk) == 1
    assert object_storage.keys() == [kept.file.name]
