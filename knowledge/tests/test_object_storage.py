"""Uploaded sources in S3-compatible object storage (a real S3 server on loopback: moto's server mode):
uploads land in the bucket as private objects, ingestion reads them from there, and deleting a source or
an organization removes them."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile

from accounts.deletion import organization_files_delete
from accounts.tests.factories import make_organization
from knowledge.models import Chunk, SourceKind, SourceStatus
from knowledge.services import source_create, source_delete, source_ingest, source_update

pytestmark = pytest.mark.django_db
GUIDE = b"# Boot care\n\nWax leather boots once a month and dry them away from the fire.\n"


def upload(name: str = "care.md", content: bytes = GUIDE) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, content, content_type="text/markdown")


def test_an_uploaded_source_lands_in_the_bucket_and_is_ingested_from_there(object_storage) -> None:
    organization = make_organization()
    source = source_create(organization=organization, kind=SourceKind.FILE, file=upload())
    key = source.file.name
    assert object_storage.keys() == [key] and key.startswith(f"knowledge/{organization.pk}/")
    assert object_storage.read(key) == GUIDE
    source = source_ingest(source_id=source.pk)
    assert source.status == SourceStatus.READY
    assert "Wax leather boots" in " ".join(
        Chunk.objects.filter(source=source).values_list("content", flat=True)
    )


def test_objects_are_private_and_links_to_them_are_signed_and_short_lived(object_storage) -> None:
    source = source_create(organization=make_organization(), kind=SourceKind.FILE, file=upload())
    acl = object_storage.client.get_object_acl(Bucket=object_storage.bucket, Key=source.file.name)
    grantees = [grant["Grantee"] for grant in acl["Grants"]]
    assert all(
        grantee.get("Type") == "CanonicalUser" for grantee in grantees
    )  # no AllUsers / AuthenticatedUsers
    query = parse_qs(urlsplit(default_storage.url(source.file.name)).query)
    assert query["X-Amz-Expires"] == ["300"] and query["X-Amz-Signature"]


def test_replacing_or_deleting_a_source_removes_its_objects(
    object_storage, django_capture_on_commit_callbacks
) -> None:
    organization = make_organization()
    source = source_create(organization=organization, kind=SourceKind.FILE, file=upload("v1.md"))
    first = source.file.name
    with django_capture_on_commit_callbacks(execute=True):
        source_update(source=source, data={"file": upload("v2.md", GUIDE + b"Laces are free.\n")})
    assert object_storage.keys() == [source.file.name] and source.file.name != first
    with django_capture_on_commit_callbacks(execute=True):
        source_delete(source=source)
    assert object_storage.keys() == []


def test_deleting_an_organizations_files_leaves_other_organizations_alone(object_storage) -> None:
    gone, stays = make_organization(name="Gone"), make_organization(name="Stays")
    for organization in (gone, gone, stays):
        source_create(organization=organization, kind=SourceKind.FILE, file=upload())
    assert len(object_storage.keys(f"knowledge/{gone.pk}/")) == 2
    assert organization_files_delete(organization_id=gone.pk) == 2
    assert object_storage.keys(f"knowledge/{gone.pk}/") == []
    assert len(object_storage.keys(f"knowledge/{stays.pk}/")) == 1
    organization_files_delete(organization_id=gone.pk)  # safe to run twice
    assert len(object_storage.keys(f"knowledge/{stays.pk}/")) == 1
