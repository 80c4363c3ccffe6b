from __future__ import annotations

import pytest

from accounts.tests.factories import make_organization
from chatbots.tests.factories import make_bot

pytestmark = pytest.mark.django_db


def test_owner_dashboard_shows_the_organization_and_first_steps(client, org_a, owner_a):
    make_bot(organization=org_a, name="Helpdesk")
    client.force_login(owner_a)
    response = client.get("/admin/")
    assert response.status_code == 200
    html = response.content.decode()
    assert 'data-testid="organization-name">Acme<' in html
    assert 'data-testid="getting-started"' in html
    assert 'data-testid="invite-link"' in html
    bots = next(stat for stat in response.context["stats"] if stat.label == "Bots")
    assert bots.count == 1 and bots.add_url
    steps = {step["text"]: step["done"] for step in response.context["getting_started"]}
    assert steps["Create your first bot"] is True
    assert steps["Invite your team"] is False


def test_member_dashboard_has_no_write_shortcuts(client, member_a):
    client.force_login(member_a)
    html = client.get("/admin/").content.decode()
    assert 'data-testid="getting-started"' not in html
    assert 'data-testid="invite-link"' not in html
    assert "/admin/chatbots/bot/add/" not in html


def test_dashboard_offers_the_organization_switch_to_members_of_several(client, owner_a):
    make_organization(name="Second", owner=owner_a)
    client.force_login(owner_a)
    html = client.get("/admin/").content.decode()
    assert 'data-testid="organization-switch"' in html
    assert "Second" in html


def test_sidebar_lists_the_models_the_user_may_view(client, member_a):
    client.force_login(member_a)
    html = client.get("/admin/").content.decode()
    assert "/admin/chatbots/bot/" in html
    assert "/admin/accounts/user/" not in html  # operators only
