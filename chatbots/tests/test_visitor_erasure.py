"""Erasing a visitor leaves nothing behind: a generic scan of every organization-data model (the isolation
walk's discovery), the media storage, Redis and Celery's results finds no trace of their visitor id, e-mail
address or message text; other visitors and organizations are untouched; a killed worker's erasure is
finished after a restart."""

from __future__ import annotations

import os
import signal
import time

import pytest
from asgiref.sync import async_to_sync
from django.conf import settings

from accounts.models import AuditAction, AuditEvent
from accounts.testing import TenantObjects, database_traces, media_traces, redis_traces, snapshot
from accounts.tests.factories import make_organization, owner_of
from chatbots.exports import conversation_export_build, conversation_export_request
from chatbots.models import (
    Conversation,
    DataSubjectRequest,
    Message,
    MessageRole,
    SubjectLookup,
    SubjectRequestKind,
    SubjectRequestStatus,
)
from chatbots.privacy import subject_request_create, subject_request_run, subject_requests_resume
from chatbots.selectors import InboxFilters
from chatbots.testing import collect_answer, connect, start_celery_worker, stop
from chatbots.tests.factories import make_bot, make_chat_bot, make_conversation, make_message

EMAIL = "ada.erasure@example.org"
VISITOR = "visitor-erase-7f3a91"
OTHER_VISITOR = "visitor-keep-22b1c8"
SECRET_TEXT = "my loyalty number is QX-4471-ZEBRA"
SECOND_TEXT = "please also note my flat is 12B on Juniper Row"


@pytest.fixture
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


def _redis_urls() -> list[str]:
    return [settings.REDIS_URL, settings.CELERY_BROKER_URL, settings.CELERY_RESULT_BACKEND]


def _wait(predicate, timeout: float = 60.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


async def _chat(bot, *, visitor: str, text: str, attributes: dict | None = None) -> str:
    """One widget message over the real socket (rate limits counted in Redis, stored by the pipeline)."""
    ws = await connect(bot, visitor=visitor)
    await ws.receive_json_from(timeout=10)  # ready
    await ws.send_json_to(
        {"type": "message", "text": text, **({"attributes": attributes} if attributes else {})}
    )
    answer = await collect_answer(ws)
    await ws.disconnect()
    return answer["done"]["conversation_id"] if answer["done"] else ""


@pytest.mark.django_db(transaction=True)
def test_erasure_leaves_no_trace_of_the_visitor_and_touches_nobody_else(media, llm_server, celery_worker):
    bot = make_chat_bot(llm_server, model="fake?reply=Noted.")
    organization = bot.organization
    other_org = make_organization(name="Untouched Org")
    world = TenantObjects(other_org, owner_of(other_org)).build_all()  # one row of every model, elsewhere
    same_org = TenantObjects(organization, owner_of(organization))
    same_org.marker = "keepsameorg"
    same_org.build_all()  # the visitor's own organization's other data (bots, sources, keys…)

    # The visitor talks over the widget twice (identified by e-mail once), and gives feedback.
    first = async_to_sync(_chat)(
        bot, visitor=VISITOR, text=SECRET_TEXT, attributes={"email": EMAIL, "name": "Ada"}
    )
    async_to_sync(_chat)(bot, visitor=VISITOR, text=SECOND_TEXT)
    Message.objects.filter(conversation_id=first, role=MessageRole.ASSISTANT).update(
        feedback="down", feedback_comment=f"{SECRET_TEXT} was ignored"
    )
    kept = async_to_sync(_chat)(bot, visitor=OTHER_VISITOR, text="What are your opening hours?")
    assert Conversation.objects.filter(visitor_id=VISITOR).count() == 2

    # Copies of the visitor elsewhere: an inbox export that contains them, a visitor export of them.
    owner = owner_of(organization)
    inbox_export = conversation_export_request(
        organization=organization, user=owner, filters=InboxFilters(search="loyalty"), format="jsonl"
    )
    conversation_export_build(export_id=inbox_export.pk)
    export = subject_request_create(
        organization=organization,
        kind=SubjectRequestKind.EXPORT,
        lookup=SubjectLookup.EMAIL,
        value=EMAIL,
        user=owner,
    )
    _wait(
        lambda: DataSubjectRequest.objects.get(pk=export.pk).status == SubjectRequestStatus.DONE,
        what="export",
    )
    needles = [VISITOR, EMAIL, SECRET_TEXT, SECOND_TEXT, "QX-4471-ZEBRA", first]
    assert media_traces(needles, media), "the setup must have put the visitor into files"
    assert redis_traces([VISITOR], _redis_urls()), "the setup must have put the visitor into Redis"
    others_before = snapshot(world)
    same_before = snapshot(same_org)
    kept_messages = list(Message.objects.filter(conversation_id=kept).values_list("pk", "text"))

    # The request, from the admin's two clicks: find by e-mail, then erase.
    client_admin(owner, EMAIL)
    erase = DataSubjectRequest.objects.get(organization=organization, kind=SubjectRequestKind.ERASE)
    _wait(
        lambda: DataSubjectRequest.objects.get(pk=erase.pk).status == SubjectRequestStatus.DONE,
        what="erasure",
    )
    erase.refresh_from_db()
    assert (erase.conversation_count, erase.message_count) == (2, 4)

    assert database_traces(needles) == []
    assert media_traces(needles, media) == []
    assert redis_traces(needles, _redis_urls()) == []
    # Everyone else is as they were.
    assert snapshot(world) == others_before
    assert snapshot(same_org) == same_before
    assert list(Message.objects.filter(conversation_id=kept).values_list("pk", "text")) == kept_messages
    # The request is on record (masked), and so is the erasure in the audit log — without the content.
    assert erase.subject_hint == "a…@e…" and erase.lookup_encrypted == ""
    assert AuditEvent.objects.filter(organization=organization, action=AuditAction.ERASURE_DONE).exists()


def client_admin(user, identifier: str) -> None:
    from django.test import Client

    client = Client()
    client.force_login(user)
    url = "/admin/chatbots/datasubjectrequest/add/"
    found = client.post(url, {"identifier": identifier, "action": "find"})
    assert found.status_code == 200 and b"2 conversations" in found.content, found.content[-2000:]
    erased = client.post(url, {"identifier": identifier, "action": "erase"})
    assert erased.status_code == 302


@pytest.mark.django_db
def test_erasure_run_twice_or_requested_again_ends_in_the_same_state(media):
    bot = make_bot()
    conversation = make_conversation(bot=bot, visitor_id=VISITOR)
    make_message(conversation=conversation, text=SECRET_TEXT)
    other = make_conversation(bot=bot, visitor_id=OTHER_VISITOR)
    make_message(conversation=other, text="keep me")
    request = subject_request_create(
        organization=bot.organization,
        kind=SubjectRequestKind.ERASE,
        lookup=SubjectLookup.VISITOR_ID,
        value=VISITOR,
    )
    done = subject_request_run(request_id=request.pk)
    assert done.status == SubjectRequestStatus.DONE and (done.conversation_count, done.message_count) == (
        1,
        1,
    )
    assert subject_request_run(request_id=request.pk) is None  # a re-delivered task finds it done
    again = subject_request_create(
        organization=bot.organization,
        kind=SubjectRequestKind.ERASE,
        lookup=SubjectLookup.VISITOR_ID,
        value=VISITOR,
    )
    assert subject_request_run(request_id=again.pk).message_count == 0
    assert not Conversation.objects.filter(visitor_id=VISITOR).exists()
    assert Message.objects.filter(conversation=other).count() == 1


@pytest.mark.django_db
def test_a_visitor_is_only_found_in_the_requesting_organization(media):
    mine = make_bot()
    foreign = make_bot(name="Foreign")
    make_message(conversation=make_conversation(bot=foreign, visitor_id=VISITOR), text="foreign")
    request = subject_request_create(
        organization=mine.organization,
        kind=SubjectRequestKind.ERASE,
        lookup=SubjectLookup.VISITOR_ID,
        value=VISITOR,
    )
    assert subject_request_run(request_id=request.pk).conversation_count == 0
    assert Message.objects.filter(conversation__bot=foreign).count() == 1


@pytest.mark.django_db(transaction=True)
def test_worker_killed_mid_erasure_finishes_it_after_a_restart(media, settings):
    bot = make_bot()
    keep = make_conversation(bot=bot, visitor_id=OTHER_VISITOR)
    make_message(conversation=keep, text="keep me")
    conversations = [make_conversation(bot=bot, visitor_id=VISITOR) for _ in range(4)]
    Message.objects.bulk_create(
        Message(
            organization=bot.organization, conversation=c, role=MessageRole.USER, text=f"{SECRET_TEXT} {i}"
        )
        for c in conversations
        for i in range(1500)
    )
    total = Message.objects.filter(conversation__visitor_id=VISITOR).count()
    # Small batches make the job long enough to be killed in the middle of it.
    env = {"PRIVACY_ERASE_BATCH": "20", "PRIVACY_STALE_SECONDS": "2"}
    worker = start_celery_worker(env, name="first")
    try:
        request = subject_request_create(
            organization=bot.organization, kind=SubjectRequestKind.ERASE, lookup=SubjectLookup.VISITOR_ID,
            value=VISITOR,
        )  # fmt: skip
        _wait(lambda: 0 < Message.objects.filter(conversation__visitor_id=VISITOR).count() < total - 200,
              timeout=120, what="the erasure to be under way")  # fmt: skip
        os.kill(worker.pid, signal.SIGKILL)  # a crash: no clean shutdown, no ack
        worker.wait(10)
    finally:
        if worker.poll() is None:
            stop(worker)
    left = Message.objects.filter(conversation__visitor_id=VISITOR).count()
    assert 0 < left < total
    assert DataSubjectRequest.objects.get(pk=request.pk).status == SubjectRequestStatus.RUNNING

    restarted = start_celery_worker({"PRIVACY_STALE_SECONDS": "2"}, name="second")
    try:
        settings.PRIVACY_STALE_SECONDS = 2
        time.sleep(2.5)  # the dead run's heartbeat goes stale
        assert subject_requests_resume() == 1  # what the beat job does every few minutes
        _wait(lambda: DataSubjectRequest.objects.get(pk=request.pk).status == SubjectRequestStatus.DONE,
              timeout=120, what="the restarted erasure")  # fmt: skip
    finally:
        stop(restarted)
    done = DataSubjectRequest.objects.get(pk=request.pk)
    assert not Conversation.objects.filter(visitor_id=VISITOR).exists()
    assert done.message_count == total and done.conversation_count == 4
    assert list(Message.objects.filter(conversation=keep).values_list("text", flat=True)) == ["keep me"]
