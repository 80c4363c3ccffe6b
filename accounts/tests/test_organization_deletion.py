"""Deleting an organization is a confirmed background job that removes its files and every row of every
organization-data model (discovered, like the isolation walk's), and nothing of another organization."""

from __future__ import annotations

import pytest
from django.core.files.base import ContentFile

from accounts.deletion import organization_delete, organization_deletion_request, organization_rows_delete
from accounts.exceptions import ApplicationError, PermissionDenied
from accounts.models import Invitation, Membership, Organization, Role
from accounts.testing import TenantObjects, data_models, snapshot
from accounts.tests.factories import add_member, make_organization, owner_of
from knowledge.tests.factories import make_source

pytestmark = pytest.mark.django_db


@pytest.fixture
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    return tmp_path


def _rows_of(organization_id: int) -> dict[str, int]:
    counts = {}
    for model in data_models():
        field = "organization_id"
        count = model._default_manager.filter(**{field: organization_id}).count()
        if count:
            counts[model._meta.label] = count
    return counts


def test_deletion_job_removes_files_and_every_row_and_spares_other_organizations(media):
    doomed = make_organization(name="Doomed")
    spared = make_organization(name="Spared")
    doomed_objects = TenantObjects(doomed, owner_of(doomed)).build_all()
    spared_objects = TenantObjects(spared, owner_of(spared)).build_all()
    upload = make_source(organization=doomed, kind="file", title="Manual")
    upload.file.save("manual.txt", ContentFile(b"secret manual"), save=True)
    kept_upload = make_source(organization=spared, kind="file", title="Kept")
    kept_upload.file.save("kept.txt", ContentFile(b"kept manual"), save=True)
    assert _rows_of(doomed.pk), "the setup must give the organization data"
    before = snapshot(spared_objects)
    doomed_file = media / upload.file.name

    organization_deletion_request(organization=doomed, user=owner_of(doomed), confirm_name="Doomed")
    assert organization_delete(organization_id=doomed.pk) is True

    assert _rows_of(doomed.pk) == {}
    assert not Organization.objects.filter(pk=doomed.pk).exists()
    assert not doomed_file.exists()
    assert (media / kept_upload.file.name).read_bytes() == b"kept manual"
    assert snapshot(spared_objects) == before
    assert doomed_objects.objects  # (built, then deleted)
    assert organization_delete(organization_id=doomed.pk) is False  # a second run finds nothing to do


def test_rows_are_deleted_in_bounded_batches_and_a_rerun_continues(media):
    organization = make_organization(name="Batched")
    for i in range(7):
        Invitation.objects.create(
            organization=organization, email=f"p{i}@example.com", token_hash=f"{i:064d}"
        )
    organization_rows_delete(organization_id=organization.pk, batch=3)
    assert not Invitation.objects.filter(organization=organization).exists()


def test_deletion_needs_an_owner_and_the_exact_name():
    organization = make_organization(name="Careful")
    admin = add_member(organization=organization, role=Role.ADMIN)
    with pytest.raises(PermissionDenied):
        organization_deletion_request(organization=organization, user=admin, confirm_name="Careful")
    with pytest.raises(ApplicationError):
        organization_deletion_request(
            organization=organization, user=owner_of(organization), confirm_name="careful"
        )
    assert Organization.objects.get(pk=organization.pk).deletion_requested_at is None
    assert Membership.objects.filter(organization=organization).count() == 2


def test_an_organization_without_confirmation_is_never_deleted_by_the_job():
    organization = make_organization(name="Unconfirmed")
    assert organization_delete(organization_id=organization.pk) is False
    assert Organization.objects.filter(pk=organization.pk).exists()
