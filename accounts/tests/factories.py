"""Test data built through the real services."""

from __future__ import annotations

import itertools

from accounts.models import Membership, Organization, Role, User
from accounts.services import organization_create

_counter = itertools.count(1)
PASSWORD = "correct-horse-battery-staple"


def make_user(*, email: str | None = None, password: str = PASSWORD, **extra: object) -> User:
    email = email or f"user{next(_counter)}@example.com"
    user = User.objects.create_user(email=email, password=password, **extra)
    # allauth requires a verified address to sign in with mandatory verification.
    from allauth.account.models import EmailAddress

    EmailAddress.objects.create(user=user, email=user.email, verified=True, primary=True)
    return user


def make_organization(*, name: str | None = None, owner: User | None = None) -> Organization:
    owner = owner or make_user()
    return organization_create(name=name or f"Org {next(_counter)}", owner=owner)


def add_member(*, organization: Organization, role: str = Role.MEMBER, user: User | None = None) -> User:
    user = user or make_user()
    Membership.objects.create(user=user, organization=organization, role=role)
    return user


def owner_of(organization: Organization) -> User:
    return organization.memberships.filter(role=Role.OWNER).first().user
