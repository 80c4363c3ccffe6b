"""The analytics section of the admin's home: the organization's own figures, filtered by period and bot,
as headline numbers and charts whose data tables carry the same numbers; scripts only as static files."""

from __future__ import annotations

import datetime as dt
import json
import re

import pytest
from django.contrib.staticfiles import finders
from django.utils import timezone

from accounts.models import Role
from accounts.tests.factories import add_member, make_organization, make_user, owner_of
from analytics.services import daily_rollup
from analytics.tests.factories import make_bot, make_traffic

pytestmark = pytest.mark.django_db

TODAY = timezone.now().date()
YESTERDAY = TODAY - dt.timedelta(days=1)
EARLIER = TODAY - dt.timedelta(days=40)  # in the 30 days before the last 30


@pytest.fixture
def traffic():
    bot = make_bot(name="Shop helper")
    second = make_bot(organization=bot.organization, name="Docs helper")
    foreign = make_bot(name="Foreign secret bot")
    for each in (bot, second, foreign):
        make_traffic(bot=each, day=YESTERDAY)
    make_traffic(bot=bot, day=EARLIER)
    for day in (YESTERDAY, EARLIER):
        daily_rollup(day=day)
    return bot, second, foreign


def charts(html: str) -> dict[str, dict]:
    block = re.search(r'<script id="analytics-chart-data" type="application/json">(.*?)</script>', html, re.S)
    return {chart["id"]: chart for chart in json.loads(block.group(1))}


def headline(response, label: str):
    return next(h for h in response.context["sections"][0]["headlines"] if h.label == label)


def test_owner_sees_headlines_and_charts_of_the_last_30_days(client, traffic):
    bot, _, _ = traffic
    client.force_login(owner_of(bot.organization))
    response = client.get("/admin/")
    html = response.content.decode()
    assert 'data-testid="analytics"' in html
    assert headline(response, "Conversations").value == "6"  # three a bot yesterday
    assert headline(response, "Conversations").change == "+100 %"  # 3 forty days ago
    assert headline(response, "Messages").value == "22"
    assert headline(response, "Satisfaction").value == "67 %"  # 4 up, 2 down
    data = charts(html)
    assert set(data) == {"volume", "resolution", "feedback", "speed", "hours", "cost"}
    assert data["hours"]["datasets"][0]["data"][12] == 8  # the traffic is at noon
    volume = data["volume"]
    assert len(volume["labels"]) == 30 and volume["labels"][-2] == YESTERDAY.isoformat()
    questions = next(d for d in volume["datasets"] if d["label"] == "Questions")
    assert sum(questions["data"]) == 8
    assert data["cost"]["labels"] == ["gpt-4o", "gpt-4o-mini", "offline"]
    # each chart's data table carries the same numbers
    assert (
        html.count("<summary") == 6
        and f'<th scope="row" class="pr-4 font-normal">{YESTERDAY.isoformat()}' in html
    )


def test_period_and_bot_filters_narrow_the_figures(client, traffic):
    bot, second, _ = traffic
    client.force_login(add_member(organization=bot.organization, role=Role.MEMBER))
    response = client.get("/admin/", {"range": "7", "bot": second.public_id})
    assert headline(response, "Conversations").value == "3"
    assert len(charts(response.content.decode())["volume"]["labels"]) == 7
    custom = client.get(
        "/admin/", {"range": "custom", "start": EARLIER.isoformat(), "end": EARLIER.isoformat()}
    )
    assert headline(custom, "Conversations").value == "3"
    assert len(charts(custom.content.decode())["volume"]["labels"]) == 1
    backwards = client.get("/admin/", {"range": "custom", "start": TODAY.isoformat(), "end": "2020-01-01"})
    assert backwards.status_code == 200 and 'role="alert"' in backwards.content.decode()
    assert backwards.context["sections"][0]["filters"].range == "30"
    assert client.get("/admin/", {"range": "custom", "start": "soon"}).status_code == 200


def test_another_organizations_bots_and_figures_never_appear(client, traffic):
    bot, _, foreign = traffic
    client.force_login(owner_of(bot.organization))
    response = client.get("/admin/", {"bot": foreign.public_id})
    html = response.content.decode()
    assert "Foreign secret bot" not in html and foreign.public_id not in html
    assert headline(response, "Conversations").value == "6"  # the filter is ignored: all own bots
    client.force_login(owner_of(foreign.organization))
    other = client.get("/admin/")
    assert headline(other, "Conversations").value == "3" and "Shop helper" not in other.content.decode()


def test_charts_load_from_static_files_without_inline_script(client, traffic):
    client.force_login(owner_of(traffic[0].organization))
    html = client.get("/admin/").content.decode()
    for tag in re.findall(r"<script[^>]*>", html):
        assert "src=" in tag or 'type="application/json"' in tag, tag
    for path in ("analytics/vendor/chartjs/chart.umd.min.js", "analytics/dashboard.js"):
        assert f"/static/{path}" in html and finders.find(path)
    assert "cdn" not in html.lower()


def test_an_empty_organization_sees_an_explanation(client):
    bot = make_bot()
    client.force_login(owner_of(bot.organization))
    response = client.get("/admin/")
    assert 'data-testid="analytics-empty"' in response.content.decode()
    assert headline(response, "Latency p95").value == "–"


def test_operators_see_the_whole_deployment(client, traffic):
    client.force_login(make_user(is_staff=True, is_superuser=True))
    response = client.get("/admin/")
    html = response.content.decode()
    assert "of the whole deployment" in html and 'name="bot"' not in html
    assert headline(response, "Conversations").value == "9"  # three bots of two organizations


def test_an_organization_without_bots_sees_nothing_of_others(client, traffic):
    empty = make_organization(name="Empty Co")
    client.force_login(owner_of(empty))
    assert headline(client.get("/admin/"), "Conversations").value == "0"
