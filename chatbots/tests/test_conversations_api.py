"""The inbox over the REST API: ``GET /api/v1/conversations/`` with the admin's filters, and one
conversation with its messages."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.tests.factories import make_organization
from chatbots.models import Conversation, MessageRole, MessageStatus
from chatbots.tests.factories import make_api_key, make_bot, make_conversation, make_message

pytestmark = pytest.mark.django_db

LIST = "/api/v1/conversations/"
SOURCE = {"source_id": 1, "title": "FAQ", "url": None, "page": None, "snippet": "…"}


def _exchange(bot, *, question: str, **answer_fields) -> Conversation:
    conversation = make_conversation(bot=bot, visitor_id=f"v-{question[:6]}")
    make_message(conversation=conversation, role=MessageRole.USER, text=question)
    answer_fields.setdefault("sources", [SOURCE])
    make_message(conversation=conversation, role=MessageRole.ASSISTANT, text="An answer.", **answer_fields)
    return conversation


def _get(client, key: str, url: str = LIST, **params):
    return client.get(url, params, HTTP_AUTHORIZATION=f"Bearer {key}")


def _ids(response) -> list[str]:
    assert response.status_code == 200, response.content
    return [row["id"] for row in response.json()["results"]]


def test_list_filters_like_the_inbox(client) -> None:
    organization = make_organization(name="Acme")
    helper, sales = make_bot(organization=organization, name="Helper"), make_bot(organization=organization)
    down = _exchange(helper, question="Where is my parcel?", feedback="down")
    fallback = _exchange(helper, question="Tents?", provider="fallback_reply", sources=[])
    failed = _exchange(sales, question="Prices?", status=MessageStatus.FAILED)
    key = make_api_key(helper).key

    rows = _get(client, key).json()["results"]
    assert {r["id"] for r in rows} == {str(down.pk), str(fallback.pk), str(failed.pk)}
    row = next(r for r in rows if r["id"] == str(down.pk))
    assert (row["title"], row["bot"], row["message_count"], row["thumbs_down"], row["unanswered"]) == (
        "Where is my parcel?", helper.public_id, 2, True, False,
    )  # fmt: skip
    assert row["visitor"].startswith("Visitor ")
    assert _ids(_get(client, key, feedback="down")) == [str(down.pk)]
    assert _ids(_get(client, key, unanswered="true")) == [str(fallback.pk)]
    assert _ids(_get(client, key, failed="true")) == [str(failed.pk)]
    assert set(_ids(_get(client, key, bot=helper.public_id))) == {str(down.pk), str(fallback.pk)}
    assert _ids(_get(client, key, q="parcel")) == [str(down.pk)]
    assert _ids(_get(client, key, since="2000-01-01", until="2000-01-02")) == []
    assert _get(client, key, feedback="sideways").status_code == 400
    assert _get(client, key, colour="red").status_code == 400  # unknown filters are refused, not ignored


def test_a_key_sees_only_its_organizations_and_its_bots_conversations(client) -> None:
    organization = make_organization(name="Acme")
    mine, other = make_bot(organization=organization, name="Mine"), make_bot(organization=organization)
    visible = _exchange(mine, question="Mine?")
    _exchange(other, question="Other bot?")
    foreign_bot = make_bot(name="Foreign")
    foreign = _exchange(foreign_bot, question="Foreign?")
    limited = make_api_key(mine, bots=[mine]).key

    assert _ids(_get(client, limited)) == [str(visible.pk)]
    assert _ids(_get(client, limited, bot=foreign_bot.public_id)) == []
    assert _ids(_get(client, limited, q="foreign")) == []
    assert _get(client, limited, f"{LIST}{foreign.pk}/").status_code == 404
    assert _get(client, limited, f"{LIST}{visible.pk}/").status_code == 200


def test_detail_has_the_summary_and_the_messages(client) -> None:
    bot = make_bot()
    conversation = _exchange(bot, question="Where is my parcel?", feedback="down")
    body = _get(client, make_api_key(bot).key, f"{LIST}{conversation.pk}/").json()
    assert body["title"] == "Where is my parcel?" and body["thumbs_down"] is True
    assert [m["role"] for m in body["messages"]] == ["user", "assistant"]


def test_list_costs_the_same_queries_for_3_or_30_conversations(client) -> None:
    bot = make_bot()
    key = make_api_key(bot).key

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert _get(client, key, feedback="down").status_code == 200
        return len(captured)

    for n in range(3):
        _exchange(bot, question=f"Question {n}?", feedback="down")
    queries()
    few = queries()
    for n in range(27):
        _exchange(bot, question=f"Question {n + 3}?", feedback="down")
    assert queries() == few


def test_list_filters_by_the_visitors_language(client) -> None:
    bot = make_bot(organization=make_organization(name="Acme"))
    german = _exchange(bot, question="Wo ist mein Paket?")
    english = _exchange(bot, question="Where is my parcel?")
    Conversation.objects.filter(pk=german.pk).update(language="de")
    Conversation.objects.filter(pk=english.pk).update(language="en")
    key = make_api_key(bot).key

    assert _ids(_get(client, key, language="de")) == [str(german.pk)]
    assert _get(client, key, language="de").json()["results"][0]["language"] == "de"
    assert _get(client, key, language="German!").status_code == 400
