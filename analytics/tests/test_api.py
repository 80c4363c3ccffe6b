"""Analytics API: figures of the caller's organization only, per range and per day, filtered by bot; the
OpenAPI schema describes both routes."""

from __future__ import annotations

import datetime as dt

import pytest
from django.urls import reverse
from django.utils import timezone

from accounts.models import Role
from accounts.services import api_key_create
from accounts.tests.factories import add_member, owner_of
from analytics.models import DailyStat
from analytics.services import daily_rollup
from analytics.tests.factories import make_bot, make_traffic
from chatbots.services import api_key_set_bots

pytestmark = pytest.mark.django_db

TODAY = timezone.now().date()
YESTERDAY = TODAY - dt.timedelta(days=1)
LAST_WEEK = TODAY - dt.timedelta(days=8)


def bearer(organization, *, bots=None) -> dict[str, str]:
    issued = api_key_create(organization=organization, name="analytics")
    api_key_set_bots(api_key=issued.api_key, bots=bots)
    return {"HTTP_AUTHORIZATION": f"Bearer {issued.key}"}


@pytest.fixture
def traffic():
    """Two bots of one organization and one of another, each with traffic yesterday and a week before."""
    bot = make_bot(name="Shop")
    second = make_bot(organization=bot.organization, name="Docs")
    foreign = make_bot(name="Foreign")
    for each in (bot, second, foreign):
        make_traffic(bot=each, day=YESTERDAY)
        make_traffic(bot=each, day=LAST_WEEK, channel="api")
    for day in (YESTERDAY, LAST_WEEK):
        daily_rollup(day=day)
    return bot, second, foreign


def test_summary_adds_up_the_range_and_compares_with_the_period_before(client, traffic):
    bot = traffic[0]
    week = {"start": (TODAY - dt.timedelta(days=6)).isoformat(), "end": TODAY.isoformat()}
    body = client.get(reverse("api-analytics-summary"), week, **bearer(bot.organization)).json()
    assert (body["previous_start"], body["previous_end"]) == (
        (TODAY - dt.timedelta(days=13)).isoformat(),
        (TODAY - dt.timedelta(days=7)).isoformat(),
    )
    current, previous = body["current"], body["previous"]
    assert (current["questions"], current["answers"], current["messages"]) == (8, 14, 22)
    assert (current["answers_faq"], current["answers_fallback"], current["failed"]) == (2, 2, 2)
    assert (current["thumbs_up"], current["thumbs_down"], current["conversations"]) == (4, 2, 6)
    assert current["cost_usd"] == "0.005830" and current["latency_p95_ms"] is not None
    assert [usage["model"] for usage in current["by_model"]] == ["gpt-4o", "gpt-4o-mini", "offline"]
    assert current["errors"] == {"client_disconnected": 2, "llm_unavailable": 2, "rate_limited": 2}
    assert previous["questions"] == 8 and previous["answers"] == 14


def test_series_has_every_day_of_the_range_and_filters_by_bot(client, traffic):
    bot, second, _ = traffic
    client.force_login(add_member(organization=bot.organization, role=Role.MEMBER))
    query = {"start": LAST_WEEK.isoformat(), "end": TODAY.isoformat(), "bot": [bot.public_id]}
    body = client.get(reverse("api-analytics-series"), query).json()
    days = {day["day"]: day["figures"] for day in body["days"]}
    assert len(days) == 9 and days[TODAY.isoformat()]["questions"] == 0
    assert days[YESTERDAY.isoformat()]["questions"] == 4 and days[LAST_WEEK.isoformat()]["answers"] == 7
    both = client.get(reverse("api-analytics-series"), {**query, "bot": [bot.public_id, second.public_id]})
    assert {day["day"]: day["figures"]["questions"] for day in both.json()["days"]}[
        YESTERDAY.isoformat()
    ] == 8


def test_figures_of_another_organization_never_appear(client, traffic):
    bot, _, foreign = traffic
    auth = bearer(bot.organization)
    url = reverse("api-analytics-summary")
    response = client.get(url, {"bot": foreign.public_id}, **auth)
    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"
    # four questions per bot and day, on two days: two bots in one organization, one in the other
    assert client.get(url, **auth).json()["current"]["questions"] == 16
    assert client.get(url, **bearer(foreign.organization)).json()["current"]["questions"] == 8
    client.force_login(owner_of(bot.organization))
    assert client.get(url, {"bot": [foreign.public_id]}).status_code == 404
    assert client.get(url).json()["current"]["questions"] == 16
    assert DailyStat.objects.filter(organization=foreign.organization).count() == 2  # nothing changed


def test_an_api_key_limited_to_a_bot_sees_only_that_bot(client, traffic):
    bot, second, _ = traffic
    auth = bearer(bot.organization, bots=[bot])
    url = reverse("api-analytics-summary")
    assert client.get(url, **auth).json()["current"]["questions"] == 8  # 4 on each of two days
    assert client.get(url, {"bot": second.public_id}, **auth).status_code == 404


def test_bad_ranges_are_refused_with_a_clear_error(client, traffic):
    auth = bearer(traffic[0].organization)
    url = reverse("api-analytics-series")
    backwards = client.get(url, {"start": TODAY.isoformat(), "end": YESTERDAY.isoformat()}, **auth)
    assert backwards.status_code == 400 and backwards.json()["error"]["code"] == "invalid_date_range"
    too_long = client.get(url, {"start": "2020-01-01", "end": "2024-01-01"}, **auth)
    assert too_long.status_code == 400
    assert client.get(url, {"start": "yesterday"}, **auth).status_code == 400
    assert client.get(url).status_code in (401, 403)


def test_schema_describes_the_analytics_routes(client):
    paths = client.get("/api/schema/", {"format": "json"}).json()["paths"]
    for route in ("/api/v1/analytics/summary/", "/api/v1/analytics/series/"):
        parameters = {parameter["name"] for parameter in paths[route]["get"]["parameters"]}
        assert {"start", "end", "bot"} <= parameters
