"""The tenant isolation walk (accounts/tests/test_admin_isolation.py) opens the admin's home and every API
route as another organization and looks for the first organization's marker. Analytics' rows for the walk
carry that marker in a model name and an error code: proven here to reach the dashboard and the API for
their own organization, so the walk's "not there for the other one" means something."""

from __future__ import annotations

import pytest

from accounts.testing import TenantObjects
from accounts.tests.factories import make_organization, owner_of
from analytics.models import DailyStat

pytestmark = pytest.mark.django_db


def test_the_walks_figures_show_their_marker_to_their_own_organization_only(client):
    own, other = (
        TenantObjects(org, owner_of(org)).build_all()
        for org in (make_organization(name="Own Walk"), make_organization(name="Other Walk"))
    )
    assert DailyStat in own.objects and DailyStat in other.objects
    client.force_login(own.owner)
    dashboard = client.get("/admin/").content.decode()
    api = client.get("/api/v1/analytics/summary/").content.decode()
    for body in (dashboard, api):
        assert f"{own.marker}-model" in body
        assert other.marker not in body
