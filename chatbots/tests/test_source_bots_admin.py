"""A knowledge source's page says which bots answer from it, and attaches or detaches bots there."""

from __future__ import annotations

import pytest
from django.urls import reverse

from accounts.models import Role
from accounts.tests.factories import add_member, make_organization, owner_of
from chatbots.tests.factories import make_bot
from knowledge.models import Source
from knowledge.tests.factories import make_source

pytestmark = pytest.mark.django_db

INLINE = {"faq_pairs-TOTAL_FORMS": "0", "faq_pairs-INITIAL_FORMS": "0"}


def _form(source: Source, bots: list) -> dict:
    return {"kind": source.kind, "title": source.title, "text": source.text, "max_pages": "50",
            "max_depth": "3", "resync_hours": "0", "bots": [bot.pk for bot in bots], **INLINE}  # fmt: skip


def test_owner_attaches_and_detaches_bots_on_the_source_page(client, monkeypatch) -> None:
    monkeypatch.setattr("knowledge.tasks.source_ingest_task.delay", lambda pk: None)
    organization = make_organization(name="Acme")
    client.force_login(owner_of(organization))
    helper, sales = (
        make_bot(organization=organization, name="Helper"),
        make_bot(organization=organization, name="Sales"),
    )
    source = make_source(organization=organization, kind="text", title="Notes", text="We open at nine.")
    change = reverse("admin:knowledge_source_change", args=[source.pk])

    assert client.post(change, _form(source, [helper, sales])).status_code == 302
    assert set(source.bots.all()) == {helper, sales}
    listing = client.get(reverse("admin:knowledge_source_changelist")).content.decode()
    assert "Helper, Sales" in listing

    assert client.post(change, _form(source, [sales])).status_code == 302
    assert list(source.bots.all()) == [sales]
    page = client.get(change).content.decode()
    assert "Used by bots" in page and "Helper" in page  # offered, unticked


def test_a_new_source_is_attached_to_the_chosen_bots(client, monkeypatch) -> None:
    monkeypatch.setattr("knowledge.tasks.source_ingest_task.delay", lambda pk: None)
    organization = make_organization(name="Acme")
    client.force_login(owner_of(organization))
    helper = make_bot(organization=organization, name="Helper")
    data = {"kind": "text", "title": "Hours", "text": "We open at nine.", "max_pages": "50", "max_depth": "3",
            "resync_hours": "0", "bots": [helper.pk], **INLINE}  # fmt: skip
    assert client.post(reverse("admin:knowledge_source_add"), data).status_code == 302
    assert list(Source.objects.get(title="Hours").bots.all()) == [helper]


def test_another_organizations_bot_is_neither_offered_nor_attached(client) -> None:
    organization = make_organization(name="Acme")
    client.force_login(owner_of(organization))
    foreign = make_bot(name="Foreign bot")
    source = make_source(organization=organization, kind="text", title="Notes", text="We open at nine.")
    change = reverse("admin:knowledge_source_change", args=[source.pk])
    assert "Foreign bot" not in client.get(change).content.decode()
    response = client.post(change, _form(source, [foreign]))
    assert response.status_code == 200 and "bots" in response.context["adminform"].form.errors
    assert not source.bots.exists()


def test_a_member_sees_the_bots_but_changes_nothing(client) -> None:
    organization = make_organization(name="Acme")
    client.force_login(add_member(organization=organization, role=Role.MEMBER))
    helper = make_bot(organization=organization, name="Helper")
    source = make_source(organization=organization, kind="text", title="Notes", text="We open at nine.")
    source.bots.add(helper)
    change = reverse("admin:knowledge_source_change", args=[source.pk])
    page = client.get(change)
    assert page.status_code == 200 and "Helper" in page.content.decode()
    client.post(change, _form(source, []))
    assert list(source.bots.all()) == [helper]
