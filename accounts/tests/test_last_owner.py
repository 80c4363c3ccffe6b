"""An organization always keeps an owner, also when two people demote or remove owners at the same time."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable

import pytest
from django.db import close_old_connections, connections

from accounts.exceptions import ApplicationError
from accounts.models import Membership, Role
from accounts.services import membership_change_role, membership_remove
from accounts.tests.factories import add_member, make_organization, owner_of

WAIT = 3.0  # seconds a request waits for the other one to reach the same point


def _race(monkeypatch, method: str, first: Callable[[], None], second: Callable[[], None]) -> list[str]:
    """Run both in threads; each pauses right before writing (``Membership.<method>``) until the other
    reaches that point too, so both have checked the rule before either writes. With a working lock the
    second one waits for the first one's transaction instead, and the pause just times out."""
    barrier = threading.Barrier(2, timeout=WAIT)
    original = getattr(Membership, method)

    def paused(self, *args, **kwargs):
        with contextlib.suppress(threading.BrokenBarrierError):  # the other one is waiting for our lock
            barrier.wait()
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Membership, method, paused)
    outcomes: list[str] = []

    def run(call: Callable[[], None]) -> None:
        try:
            call()
            outcomes.append("done")
        except ApplicationError as exc:
            outcomes.append(exc.message)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(call,)) for call in (first, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    close_old_connections()
    return outcomes


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_demotions_leave_an_owner(monkeypatch):
    org = make_organization()
    first = Membership.objects.get(organization=org, user=owner_of(org))
    second = Membership.objects.get(user=add_member(organization=org, role=Role.OWNER))
    outcomes = _race(
        monkeypatch,
        "save",
        lambda: membership_change_role(membership=first, role=Role.MEMBER),
        lambda: membership_change_role(membership=second, role=Role.ADMIN),
    )
    assert sorted(outcomes) == ["An organization needs at least one owner.", "done"]
    assert Membership.objects.filter(organization=org, role=Role.OWNER).count() == 1


@pytest.mark.django_db(transaction=True)
def test_two_owners_leaving_at_once_leave_an_owner(monkeypatch):
    org = make_organization()
    first = Membership.objects.get(organization=org, user=owner_of(org))
    second = Membership.objects.get(user=add_member(organization=org, role=Role.OWNER))
    outcomes = _race(
        monkeypatch,
        "delete",
        lambda: membership_remove(membership=first),
        lambda: membership_remove(membership=second),
    )
    assert sorted(outcomes) == [
        "The last owner cannot leave the organization: hand it over to another member or delete it.",
        "done",
    ]
    assert Membership.objects.filter(organization=org, role=Role.OWNER).count() == 1
