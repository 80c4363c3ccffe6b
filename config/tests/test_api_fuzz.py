"""Schemathesis against Parlor's own OpenAPI schema (/api/schema/), in process: every operation gets
generated input that fits the schema and input that does not (wrong types, missing fields, odd strings),
as an API key and as a signed-in owner, on real objects and on generated ids; no answer may be a server
error (schemathesis' ``not_a_server_error`` check) and every answer the schema describes must match it
(``response_schema_conformance``).

Every route is in the schema (accounts/tests/test_api_schema.py fails otherwise), the chat endpoints too:
JSON and SSE messages, OpenAI's chat completions, Responses and models, answered here by the offline
provider (no network). Bounded and deterministic: a fixed number of examples per run, derandomized
(Hypothesis derives the seed from the test), no example database.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import hypothesis
import pytest
import schemathesis
from django.core.wsgi import get_wsgi_application
from schemathesis.checks import not_a_server_error, response_schema_conformance

from accounts.services import api_key_create
from accounts.tests.factories import PASSWORD, make_organization, owner_of
from chatbots.exports import conversation_export_build, conversation_export_request
from chatbots.models import Conversation, Message, MessageRole
from chatbots.privacy import subject_request_create, subject_request_run
from chatbots.selectors import InboxFilters
from chatbots.services import bot_create
from knowledge.models import SourceKind
from knowledge.services import source_create
from webhooks.models import EventType, WebhookDelivery
from webhooks.services import webhook_event
from webhooks.tests.factories import make_endpoint

MAX_EXAMPLES = 10  # per operation, mode, caller and kind of ids: about 1,400 requests (CI time: 30 min)
HOST = "localhost"  # schemathesis' WSGI client sends it, and keeps its cookies for it
CSRF_TOKEN = "c" * 32
# Calling a provider reaches the network: test-connection only ever sees generated (unknown) bot ids.
GENERATED_IDS_ONLY = {"POST /api/v1/bots/{public_id}/test-connection/"}


@dataclass
class Caller:
    headers: dict[str, str]
    cookies: dict[str, str]
    path_parameters: dict[str, str]  # ids of real objects the caller may reach


@pytest.fixture
def callers(transactional_db: None, client, settings) -> dict[str, Caller]:
    """An API key and a signed-in owner (session cookie and CSRF token) of an organization with a bot, a
    source, a conversation with an answer, and a second API key to revoke. Committed, as the app would
    see them: the chat endpoints answer from other threads once they are in the schema."""
    settings.ALLOWED_HOSTS = [HOST]
    settings.API_RATE_LIMIT = "off"  # a 429 would end an operation's coverage early
    organization = make_organization(name="Fuzzed Inc")
    owner = owner_of(organization)
    bot = bot_create(organization=organization, name="Fuzzed bot")
    source = source_create(organization=organization, kind=SourceKind.TEXT, title="Notes", text="Boots.")
    conversation = Conversation.objects.create(organization=organization, bot=bot, channel="api")
    Message.objects.create(
        organization=organization, conversation=conversation, role=MessageRole.USER, text="Hi"
    )
    answer = Message.objects.create(
        organization=organization, conversation=conversation, role=MessageRole.ASSISTANT, text="Hello."
    )
    export = conversation_export_request(
        organization=organization, user=owner, filters=InboxFilters(), format="csv"
    )
    conversation_export_build(export_id=export.pk)
    subject_request = subject_request_create(
        organization=organization, kind="export", lookup="visitor_id", value="fuzz-visitor", user=owner
    )
    subject_request_run(request_id=subject_request.pk)
    endpoint = make_endpoint(organization=organization, url="https://hooks.example.com/parlor")
    webhook_event(
        organization_id=organization.pk, event_type=EventType.SOURCE_READY, data={"source": {"id": source.pk}}
    )
    delivery = WebhookDelivery.objects.get(endpoint=endpoint)
    key = api_key_create(organization=organization, created_by=owner, name="fuzz").key
    spare = api_key_create(organization=organization, created_by=owner, name="spare").api_key
    assert client.login(email=owner.email, password=PASSWORD)
    ids = {
        "public_id": bot.public_id,
        "model": bot.public_id,  # the OpenAI-compatible API's name for a bot
        "source_id": str(source.pk),
        "conversation_id": str(conversation.pk),
        "message_id": str(answer.pk),
        "export_id": str(export.pk),
        "request_id": str(subject_request.pk),
        "prefix": spare.prefix,
        "endpoint_id": str(endpoint.pk),
        "delivery_id": str(delivery.pk),
    }
    session = client.cookies["sessionid"].value
    return {
        "api-key": Caller({"Authorization": f"Bearer {key}"}, {}, ids),
        "session": Caller({"X-CSRFToken": CSRF_TOKEN}, {"sessionid": session, "csrftoken": CSRF_TOKEN}, ids),
    }


def fuzz(operation: Any, mode: schemathesis.GenerationMode, caller: Caller, path_parameters: dict) -> None:
    @hypothesis.settings(
        max_examples=MAX_EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(hypothesis.HealthCheck),
    )
    @hypothesis.given(case=operation.as_strategy(generation_mode=mode, path_parameters=path_parameters))
    def check(case: schemathesis.Case) -> None:
        # The caller's credentials replace whatever the schema's security schemes made up.
        generated = {
            k: v for k, v in (case.headers or {}).items() if k.lower() not in ("authorization", "cookie")
        }
        case.headers = {**generated, **caller.headers}
        case.cookies = caller.cookies
        case.validate_response(case.call(), checks=[not_a_server_error, response_schema_conformance])

    check()


def operations() -> list[Any]:
    schema = schemathesis.openapi.from_wsgi("/api/schema/", get_wsgi_application())
    found = [result.ok() for result in schema.get_all_operations()]
    assert len(found) >= 25, "the schema lost its operations"
    return sorted(found, key=_order)


def _order(operation: Any) -> tuple[bool, bool]:
    """Chat first, while the bot is still active (a fuzzed PATCH may pause it: a 503 by design); deleting and
    revoking last, so the other operations still find the real objects."""
    method = operation.method.upper()
    chat = operation.path.startswith("/v1/") or (method == "POST" and operation.path.endswith("/messages"))
    return not chat, method == "DELETE" or "revoke" in operation.path


@pytest.mark.parametrize("caller", ["api-key", "session"])
@pytest.mark.parametrize("mode", list(schemathesis.GenerationMode), ids=str)
def test_no_api_operation_answers_with_a_server_error(callers, caller, mode) -> None:
    caller = callers[caller]
    for operation in operations():
        names = re.findall(r"{(\w+)}", operation.path)
        fuzz(operation, mode, caller, {})  # generated ids: unknown, malformed, absurd
        if names and operation.label not in GENERATED_IDS_ONLY:
            fuzz(operation, mode, caller, {name: caller.path_parameters[name] for name in names})


# Invalid UTF-8 in a URL is decoded as U+FFFD, which is harmless: it only must not be a server error.
BAD_PARAMETERS = {"nul": "a%00b", "only-nul": "%00", "invalid-utf8": "a%ED%A0%80b"}
BAD_BODIES = {
    "nul-in-a-value": '{"name": "a\\u0000b", "text": "a\\u0000b"}',
    "lone-surrogate": '{"name": "a\\ud800b"}',
    "nul-in-a-key": '{"a\\u0000b": 1}',
    "nested-too-deep": '{"name": "x", "a": ' + "[" * 40 + "]" * 40 + "}",
    "nested-past-the-parser": "[" * 100_000 + "]" * 100_000,
    "nan": '{"name": NaN}',
}


def bad_requests(operation: Any, ids: dict[str, str]) -> Iterator[tuple[str, str, str | None]]:
    """(case, URL, JSON body) with one bad part each: every path and query parameter, then the body."""
    names = re.findall(r"{(\w+)}", operation.path)
    real = operation.path.format(**ids)
    for case, bad in BAD_PARAMETERS.items():
        for name in names:
            yield f"path {name} {case}", operation.path.format(**{**ids, name: bad}), None
        for name in [parameter.name for parameter in operation.query] + ["unknown"]:
            yield f"query {name} {case}", f"{real}?{name}={bad}", None
    if list(operation.body):
        for case, body in BAD_BODIES.items():
            yield f"body {case}", real, body


def test_every_operation_answers_bad_input_with_a_client_error(callers) -> None:
    """The bad-input rows of chatbots/tests/test_bad_input.py, for every operation the schema lists (so a
    new endpoint is covered the day it is added): a 4xx, never a 5xx or a success."""
    from werkzeug import Client

    for caller in callers.values():
        client = Client(get_wsgi_application())
        for name, value in caller.cookies.items():
            client.set_cookie(name, value, domain=HOST)
        for operation in operations():
            for case, url, body in bad_requests(operation, caller.path_parameters):
                response = client.open(url, method=operation.method.upper(), headers=caller.headers,
                                       data=body, content_type="application/json")  # fmt: skip
                assert response.status_code < 500, (operation.label, case, response.status_code)
                if "utf8" in case:
                    continue
                assert response.status_code >= 400, (operation.label, case, response.status_code)
                if case.startswith(("path", "query")):
                    assert response.json["error"]["code"] == "bad_input", (operation.label, case)
