"""Prometheus /metrics: only for the scraper's token or staff; request counters, today's chat figures
from the roll-up, knowledge sources by status and Celery queue lengths."""

from __future__ import annotations

import pytest
import redis
from django.conf import settings as django_settings
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from accounts.tests.factories import make_user, owner_of
from analytics.services import daily_rollup
from analytics.tests.factories import make_bot, make_traffic
from knowledge.models import SourceKind
from knowledge.services import source_create

pytestmark = pytest.mark.django_db

TOKEN = "metrics-token-3f9a7c1e5b"


def samples(body: bytes) -> dict[tuple[str, tuple], float]:
    found = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def test_metrics_need_the_token_or_a_staff_user(client, settings):
    settings.METRICS_TOKEN = TOKEN
    refused = client.get("/metrics")
    assert refused.status_code == 401 and refused["WWW-Authenticate"].startswith("Bearer")
    assert refused.json()["error"]["code"] == "unauthorized"
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 200
    client.force_login(owner_of(make_bot().organization))  # a customer, even an owner, is no operator
    assert client.get("/metrics").status_code == 401
    client.force_login(make_user(is_staff=True))
    assert client.get("/metrics").status_code == 200


def test_metrics_show_requests_chat_knowledge_and_queues(client, settings):
    settings.METRICS_TOKEN = TOKEN
    auth = {"HTTP_AUTHORIZATION": f"Bearer {TOKEN}"}
    bot = make_bot()
    make_traffic(bot=bot, day=timezone.now().date())
    daily_rollup(day=timezone.now().date())
    source_create(organization=bot.organization, kind=SourceKind.TEXT, title="Notes", text="Boots.")
    broker = redis.Redis.from_url(django_settings.CELERY_BROKER_URL)
    broker.rpush("metrics-test-queue", "a", "b")
    settings.METRICS_CELERY_QUEUES = ["metrics-test-queue"]
    try:
        client.get("/healthz")
        found = samples(client.get("/metrics", **auth).content)
    finally:
        broker.delete("metrics-test-queue")
    requests = [
        value for (name, labels), value in found.items()
        if name == "parlor_http_requests_total" and ("view", "healthz") in labels and ("status", "200") in labels
    ]  # fmt: skip
    assert requests and requests[0] >= 1
    assert found[("parlor_chat_answers_today", (("kind", "faq"),))] == 1
    assert found[("parlor_chat_today", (("figure", "questions"),))] == 4
    assert ("parlor_chat_latency_today_seconds", (("quantile", "0.95"),)) in found
    assert found[("parlor_analytics_rollup_age_seconds", ())] < 60
    assert sum(value for (name, _), value in found.items() if name == "parlor_knowledge_sources") >= 1
    assert found[("parlor_celery_queue_length", (("queue", "metrics-test-queue"),))] == 2
    assert all(value == 1 for (name, _), value in found.items() if name == "parlor_metrics_source_up")


def test_a_source_that_fails_is_reported_and_the_scrape_still_answers(client, settings):
    settings.METRICS_TOKEN = TOKEN
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"  # nothing listens there
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    found = samples(response.content)
    assert response.status_code == 200
    assert found[("parlor_metrics_source_up", (("source", "celery"),))] == 0
    assert found[("parlor_metrics_source_up", (("source", "chat"),))] == 1
    assert not any(name == "parlor_celery_queue_length" for name, _ in found)
