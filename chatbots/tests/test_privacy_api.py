"""Data subject requests over the REST API and the admin: found by visitor id, e-mail or conversation id;
exported as JSON + HTML + CSV through an expiring link of one organization; outsiders see nothing."""

from __future__ import annotations

import io
import json
import zipfile

import pytest
from django.test import Client

from accounts.models import Role
from accounts.tests.factories import add_member, make_organization, owner_of
from chatbots.models import DataSubjectRequest, Message
from chatbots.privacy import subject_request_run
from chatbots.tests.factories import make_api_key, make_bot, make_conversation, make_message

pytestmark = pytest.mark.django_db
EMAIL = "grace@example.net"


@pytest.fixture
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path


@pytest.fixture
def visitor_bot():
    bot = make_bot(name="Support")
    conversation = make_conversation(bot=bot, visitor_id="v-grace", visitor_attributes={"email": EMAIL})
    make_message(conversation=conversation, text="<b>Where is my order 991?</b>")
    later = make_conversation(bot=bot, visitor_id="v-grace")
    make_message(conversation=later, text="Any news on 991?", feedback="down", feedback_comment="slow")
    return bot


def api(key: str) -> Client:
    return Client(HTTP_AUTHORIZATION=f"Bearer {key}")


def _zip(response) -> dict[str, bytes]:
    archive = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))
    return {name: archive.read(name) for name in archive.namelist()}


def test_export_by_email_through_the_api_downloads_json_html_and_csv(media, visitor_bot):
    key = make_api_key(visitor_bot).key
    created = api(key).post("/api/v1/privacy/requests/", {"kind": "export", "email": EMAIL.upper()},
                            content_type="application/json")  # fmt: skip
    assert created.status_code == 202, created.content
    body = created.json()
    assert body["status"] == "queued" and body["subject"] == "g…@e…" and body["download_url"] is None
    subject_request_run(request_id=body["id"])  # what the Celery job runs
    detail = api(key).get(f"/api/v1/privacy/requests/{body['id']}/").json()
    assert detail["status"] == "done" and (detail["conversation_count"], detail["message_count"]) == (2, 2)
    files = _zip(Client().get(detail["download_url"]))  # the signed link is the credential
    data = json.loads(files["data.json"])
    assert [m["text"] for c in data["conversations"] for m in c["messages"]] == [
        "<b>Where is my order 991?</b>", "Any news on 991?"
    ]  # fmt: skip
    assert data["visitor_ids"] == ["v-grace"] and data["emails"] == [EMAIL]
    assert b"&lt;b&gt;Where is my order 991?&lt;/b&gt;" in files["transcripts.html"]  # escaped, readable
    assert b"Any news on 991?" in files["messages.csv"] and b"slow" in files["messages.csv"]


def test_erase_by_conversation_id_through_the_api(media, visitor_bot):
    key = make_api_key(visitor_bot).key
    conversation = visitor_bot.conversations.filter(visitor_attributes__email=EMAIL).get()
    created = api(key).post("/api/v1/privacy/requests/", {"kind": "erase", "conversation_id": str(conversation.pk)},
                            content_type="application/json")  # fmt: skip
    assert created.status_code == 202
    subject_request_run(request_id=created.json()["id"])
    assert not Message.objects.filter(conversation__bot=visitor_bot).exists()  # both of the visitor's


def test_outsiders_and_limited_keys_cannot_see_or_make_requests(media, visitor_bot):
    key = make_api_key(visitor_bot).key
    body = api(key).post("/api/v1/privacy/requests/", {"kind": "export", "visitor_id": "v-grace"},
                         content_type="application/json").json()  # fmt: skip
    subject_request_run(request_id=body["id"])
    outsider = make_api_key(make_bot(name="Outsider")).key
    assert api(outsider).get(f"/api/v1/privacy/requests/{body['id']}/").status_code == 404
    read_only = make_api_key(visitor_bot, read_only=True).key
    refused = api(read_only).post("/api/v1/privacy/requests/", {"kind": "erase", "visitor_id": "v-grace"},
                                  content_type="application/json")  # fmt: skip
    assert refused.status_code == 403
    limited = make_api_key(visitor_bot, bots=[visitor_bot]).key
    assert api(limited).get(f"/api/v1/privacy/requests/{body['id']}/").status_code == 403
    assert (
        api(key)
        .post("/api/v1/privacy/requests/", {"kind": "erase"}, content_type="application/json")
        .status_code
        == 400
    )
    assert Client().get("/api/v1/privacy/download/forged-token/").status_code == 404
    assert Message.objects.filter(conversation__bot=visitor_bot).count() == 2
    assert DataSubjectRequest.objects.filter(organization=visitor_bot.organization).count() == 1


def test_members_cannot_reach_data_requests_in_the_admin(media, visitor_bot):
    member = add_member(organization=visitor_bot.organization, role=Role.MEMBER)
    client = Client()
    client.force_login(member)
    assert client.get("/admin/chatbots/datasubjectrequest/add/").status_code == 403
    assert (
        client.post(
            "/admin/chatbots/datasubjectrequest/add/", {"identifier": EMAIL, "action": "erase"}
        ).status_code
        == 403
    )
    assert Message.objects.filter(conversation__bot=visitor_bot).count() == 2


def test_admin_finds_by_email_and_exports_in_two_clicks(media, visitor_bot):
    client = Client()
    client.force_login(owner_of(visitor_bot.organization))
    url = "/admin/chatbots/datasubjectrequest/add/"
    found = client.post(url, {"identifier": EMAIL, "action": "find"})
    assert b"2 conversations" in found.content and b"2 messages" in found.content
    assert client.post(url, {"identifier": EMAIL, "action": "export"}).status_code == 302
    request = DataSubjectRequest.objects.get(organization=visitor_bot.organization)
    subject_request_run(request_id=request.pk)
    listing = client.get("/admin/chatbots/datasubjectrequest/")
    download = f"/admin/chatbots/datasubjectrequest/{request.pk}/download/"
    assert download.encode() in listing.content
    assert "data.json" in _zip(client.get(download))
    # Another organization's owner gets a 404 for the same link.
    stranger = Client()
    stranger.force_login(owner_of(make_organization(name="Stranger")))
    assert stranger.get(download).status_code == 404
