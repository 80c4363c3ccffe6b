from __future__ import annotations

import pytest
from django.contrib.sessions.backends.db import SessionStore
from django.test import RequestFactory

from accounts.models import Organization, Role
from accounts.tests.factories import add_member, make_organization, owner_of


@pytest.fixture
def org_a(db) -> Organization:
    return make_organization(name="Acme")


@pytest.fixture
def org_b(db) -> Organization:
    return make_organization(name="Globex")


@pytest.fixture
def make_request():
    """A GET/POST request for ``user`` with a real session (as the admin sees it)."""

    def build(user, method: str = "get", path: str = "/admin/", data: dict | None = None):
        request = getattr(RequestFactory(), method)(path, data or {})
        request.user = user
        request.session = SessionStore()
        return request

    return build


@pytest.fixture
def owner_a(org_a):
    return owner_of(org_a)


@pytest.fixture
def member_a(org_a):
    return add_member(organization=org_a, role=Role.MEMBER)


@pytest.fixture
def admin_a(org_a):
    return add_member(organization=org_a, role=Role.ADMIN)
