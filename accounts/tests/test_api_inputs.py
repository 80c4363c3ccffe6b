"""Every API input refuses fields it does not know (``accounts.api.inputs``): a misspelt field is a 400 that
names it, and nothing is created or changed."""

from __future__ import annotations

import pytest
from django.urls import reverse
from rest_framework import serializers

from accounts.api.inputs import InputSerializer
from accounts.models import ApiKey
from accounts.services import api_key_create
from accounts.tests.factories import make_organization, owner_of
from chatbots.models import Bot
from knowledge.models import Source, SourceKind

pytestmark = pytest.mark.django_db


class Example(InputSerializer):
    name = serializers.CharField()
    shown = serializers.CharField(read_only=True)


def test_unknown_fields_are_named_and_read_only_fields_are_ignored():
    payload = Example(data={"name": "x", "nmae": "y", "shown": "z"})
    assert not payload.is_valid()
    assert payload.errors == {"nmae": ["Unknown field."]}
    assert Example(data={"name": "x", "shown": "z"}).is_valid()


def _cases(org, bot, source):
    return [
        ("post", reverse("api-bots"), {"name": "New", "colour": "#fff"}),
        ("patch", reverse("api-bot", args=[bot.public_id]), {"name": "Renamed", "nmae": "x"}),
        ("post", reverse("api-sources"), {"kind": "text", "text": "Hi", "bot": [bot.public_id]}),
        ("patch", reverse("api-source", args=[source.pk]), {"title": "Renamed", "bots_ids": []}),
        (
            "patch",
            reverse("api-source", args=[source.pk]),
            {"faq_pairs": [{"question": "Q?", "answer": "A", "score": 1}]},
        ),
    ]


@pytest.mark.parametrize("case", range(5))
def test_every_write_endpoint_refuses_unknown_fields(client, case):
    org = make_organization()
    bot = Bot.objects.create(organization=org, name="Bot")
    source = Source.objects.create(organization=org, kind=SourceKind.FAQ, title="Notes")
    method, url, body = _cases(org, bot, source)[case]
    key = api_key_create(organization=org, name="k").key
    before = (Bot.objects.count(), Source.objects.count(), bot.name, source.title)
    response = getattr(client, method)(
        url, body, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {key}"
    )
    assert response.status_code == 400, response.content
    assert "Unknown field." in response.content.decode()
    bot.refresh_from_db()
    source.refresh_from_db()
    assert (Bot.objects.count(), Source.objects.count(), bot.name, source.title) == before


def test_a_multipart_upload_with_an_unknown_field_is_refused(client):
    org = make_organization()
    client.force_login(owner_of(org))
    response = client.post(reverse("api-sources"), {"kind": "text", "text": "Hi", "titel": "x"})
    assert response.status_code == 400 and response.json() == {"titel": ["Unknown field."]}
    assert not Source.objects.exists()


def test_api_key_creation_refuses_unknown_fields(client):
    org = make_organization()
    client.force_login(owner_of(org))
    response = client.post(
        reverse("api-api-keys"), {"name": "x", "readonly": True}, content_type="application/json"
    )
    assert response.status_code == 400 and response.json() == {"readonly": ["Unknown field."]}
    assert not ApiKey.objects.exists()
