"""Improve an answer in one click: a correction in the inbox becomes an FAQ pair of the bot that answers
the question from then on, records where it came from and counts how often it has answered."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async

from accounts.models import Role
from accounts.tests.factories import add_member, make_organization, owner_of
from chatbots.models import Message, MessageRole
from chatbots.services import answer_improve
from chatbots.testing import collect_answer, connect
from chatbots.tests.factories import make_bot, make_chat_bot, make_conversation, make_message
from config.errors import ApplicationError
from knowledge.models import FaqPair, Source, SourceKind
from knowledge.services import source_create, source_ingest

INBOX = "/admin/chatbots/conversation/"


def _answered(bot, *, question: str = "Do you sell tents?", answer: str = "Sorry, I don't know.") -> Message:
    conversation = make_conversation(bot=bot, visitor_id="visitor-1")
    make_message(conversation=conversation, role=MessageRole.USER, text=question)
    return make_message(conversation=conversation, role=MessageRole.ASSISTANT, text=answer, feedback="down")


def _improve_url(message: Message) -> str:
    return f"{INBOX}{message.conversation_id}/improve/{message.pk}/"


@pytest.mark.django_db
def test_improving_into_a_new_source_creates_an_faq_source_of_the_bot_with_the_origin() -> None:
    bot = make_bot()
    message = _answered(bot)
    source = answer_improve(message=message, question="Do you sell tents?", answer="Yes, from May.",
                            new_source_title="Corrections")  # fmt: skip
    assert (source.kind, source.title, list(source.bots.all())) == (SourceKind.FAQ, "Corrections", [bot])
    pair = FaqPair.objects.get(source=source)
    assert (pair.question, pair.answer, pair.origin_message_id, pair.origin_conversation_id) == (
        "Do you sell tents?", "Yes, from May.", message.pk, message.conversation_id,
    )  # fmt: skip


@pytest.mark.django_db
def test_improving_into_an_existing_source_replaces_the_same_question_and_keeps_the_other_pairs() -> None:
    bot = make_bot()
    faq = source_create(organization=bot.organization, kind=SourceKind.FAQ, title="FAQ",
                        faq_pairs=[("Do you sell tents?", "No."), ("Opening hours?", "9 to 5.")])  # fmt: skip
    bot.sources.add(faq)
    kept = FaqPair.objects.get(question="Opening hours?")
    FaqPair.objects.filter(pk=kept.pk).update(answered_count=7)
    message = _answered(bot)

    answer_improve(message=message, question="do you sell TENTS", answer="Yes, from May.", source=faq)

    pairs = {p.question: p for p in FaqPair.objects.filter(source=faq)}
    assert set(pairs) == {"Opening hours?", "do you sell TENTS"}
    assert pairs["Opening hours?"].pk == kept.pk and pairs["Opening hours?"].answered_count == 7
    assert pairs["do you sell TENTS"].origin_message_id == message.pk
    other = source_create(organization=bot.organization, kind=SourceKind.FAQ, title="Not the bot's",
                          faq_pairs=[("A?", "B.")])  # fmt: skip
    with pytest.raises(ApplicationError):
        answer_improve(message=message, question="Q?", answer="A.", source=other)
    with pytest.raises(ApplicationError):
        answer_improve(
            message=Message.objects.filter(role=MessageRole.USER).first(), question="Q?", answer="A."
        )


@pytest.mark.django_db
def test_owner_improves_an_answer_from_the_transcript(client) -> None:
    organization = make_organization(name="Acme")
    bot = make_bot(organization=organization)
    message = _answered(bot)
    client.force_login(add_member(organization=organization, role=Role.ADMIN))

    transcript = client.get(f"{INBOX}{message.conversation_id}/change/").content.decode()
    assert _improve_url(message) in transcript
    form = client.get(_improve_url(message))
    assert form.status_code == 200
    assert form.context["form"]["question"].value() == "Do you sell tents?"  # prefilled with the question
    response = client.post(_improve_url(message), {"question": "Do you sell tents?", "answer": "Yes, from May.",
                                                   "source": "", "new_source_title": "Improved answers"})  # fmt: skip
    assert response.status_code == 302 and response["Location"].endswith(f"#message-{message.pk}")
    source = Source.objects.get(organization=organization, kind=SourceKind.FAQ)
    assert list(source.bots.all()) == [bot]
    page = client.get(f"{INBOX}{message.conversation_id}/change/").content.decode()
    assert "data-improved" in page and "Improved answers" in page and "answered 0 times since" in page


@pytest.mark.django_db
def test_member_reads_but_cannot_improve_and_foreign_answers_are_not_found(client) -> None:
    organization = make_organization(name="Acme")
    message = _answered(make_bot(organization=organization))
    foreign = _answered(make_bot(name="Other"))
    client.force_login(add_member(organization=organization, role=Role.MEMBER))
    assert (
        _improve_url(message) not in client.get(f"{INBOX}{message.conversation_id}/change/").content.decode()
    )
    assert client.post(_improve_url(message), {"question": "Q?", "answer": "A."}).status_code == 403

    client.force_login(owner_of(organization))
    assert client.get(_improve_url(foreign)).status_code == 404
    # another organization's answer under one's own conversation
    assert client.post(f"{INBOX}{message.conversation_id}/improve/{foreign.pk}/",
                       {"question": "Q?", "answer": "A."}).status_code == 404  # fmt: skip
    question = Message.objects.get(conversation=message.conversation, role=MessageRole.USER)
    assert client.get(f"{INBOX}{message.conversation_id}/improve/{question.pk}/").status_code == 404
    assert not FaqPair.objects.exists()


@pytest.mark.django_db(transaction=True)
async def test_re_asking_after_an_improvement_gets_the_new_answer_and_counts_it(llm_server) -> None:
    bot = await sync_to_async(make_chat_bot)(llm_server)
    question = "Do you rent tents for festivals?"

    async def ask(text: str) -> dict:
        ws = await connect(bot)
        await ws.receive_json_from()  # ready
        await ws.send_json_to({"type": "message", "text": text})
        answer = await collect_answer(ws)
        await ws.disconnect(timeout=15)
        return answer

    first = await ask(question)  # the knowledge does not cover it: the bot's fallback reply
    assert first["text"] == bot.fallback_reply
    wrong = await Message.objects.aget(pk=first["done"]["message_id"])

    def improve() -> Source:
        source = answer_improve(message=Message.objects.select_related("conversation__bot").get(pk=wrong.pk),
                                question=question, answer="Yes: tents for 2 to 8 people, from 20 EUR a day.")  # fmt: skip
        source_ingest(source_id=source.pk)  # what the ingestion job does after the commit
        return source

    await sync_to_async(improve)()
    second = await ask("do you rent tents for festivals")
    assert second["text"] == "Yes: tents for 2 to 8 people, from 20 EUR a day."
    stored = await Message.objects.aget(pk=second["done"]["message_id"])
    assert stored.answered_from_faq
    await ask(question)
    pair = await FaqPair.objects.aget(origin_message_id=wrong.pk)
    assert pair.answered_count == 2 and pair.last_answered_at is not None
