"""Deleting organizations and accounts (services).

An organization is deleted by a background job (``organization_delete``) after an owner confirmed it by
typing its name. The job finds the organization's data generically — every model of the project's apps
with an ``organization`` foreign key or an ``organization_id`` column (``organization_data_models``) — so a
model added later is removed too without touching this module. Files of those models' ``FileField``\\s are
deleted from storage first, then the rows in bounded batches (short transactions), then the organization.
Safe to run twice or after a crash: each step only deletes what is still there.

A user deletes their own account after re-authenticating (``user_delete``); an organization whose last
owner goes is handed over to another member or deleted, as the user chose — never left without an owner.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from django.apps import apps
from django.core.exceptions import FieldDoesNotExist
from django.db import models, transaction
from django.utils import timezone

from accounts.audit import audit_record
from accounts.exceptions import ApplicationError, PermissionDenied
from accounts.models import AuditAction, Membership, Organization, Role, User

logger = logging.getLogger(__name__)

PROJECT_APPS = ("accounts", "webhooks", "knowledge", "chatbots", "analytics")
DELETE_BATCH = 2000


def organization_data_models() -> list[tuple[type[models.Model], str]]:
    """Every concrete model of the project's apps that holds an organization's rows, with the lookup that
    selects them (``organization`` for a foreign key, ``organization_id`` for a plain column)."""
    found = []
    for model in apps.get_models():
        opts = model._meta
        if opts.app_label not in PROJECT_APPS or opts.proxy or opts.abstract or model is Organization:
            continue
        try:
            field = opts.get_field("organization")
            if field.is_relation and field.related_model is Organization:
                found.append((model, "organization"))
                continue
        except FieldDoesNotExist:
            pass
        try:
            field = opts.get_field("organization_id")
            if isinstance(field, models.IntegerField):
                found.append((model, "organization_id"))
        except FieldDoesNotExist:
            pass
    return found


def _file_fields(model: type[models.Model]) -> list[str]:
    return [f.name for f in model._meta.concrete_fields if isinstance(f, models.FileField)]


def organization_files_delete(*, organization_id: int) -> int:
    """Delete from storage every file an organization's rows point at; returns how many were deleted."""
    deleted = 0
    for model, lookup in organization_data_models():
        names = _file_fields(model)
        if not names:
            continue
        for row in model._default_manager.filter(**{lookup: organization_id}).only("pk", *names).iterator():
            for name in names:
                field_file = getattr(row, name)
                if field_file and field_file.name:
                    field_file.storage.delete(field_file.name)  # a missing file is no error
                    deleted += 1
    return deleted


def organization_rows_delete(*, organization_id: int, batch: int = DELETE_BATCH) -> int:
    """Delete an organization's rows model by model, ``batch`` rows per short transaction."""
    deleted = 0
    for model, lookup in organization_data_models():
        manager = model._default_manager
        while True:
            ids = list(manager.filter(**{lookup: organization_id}).values_list("pk", flat=True)[:batch])
            if not ids:
                break
            with transaction.atomic():
                deleted += manager.filter(pk__in=ids).delete()[0]
    return deleted


# --- organizations -------------------------------------------------------------------------------------
@transaction.atomic
def organization_deletion_request(
    *, organization: Organization, user: User, confirm_name: str
) -> Organization:
    """An owner confirms by typing the organization's name; the job starts after commit."""
    from accounts.tasks import organization_delete_task

    if (
        not user.is_superuser
        and not Membership.objects.filter(user=user, organization=organization, role=Role.OWNER).exists()
    ):
        raise PermissionDenied("Only an owner can delete the organization.")
    if confirm_name.strip() != organization.name:
        raise ApplicationError("Type the organization's name exactly to confirm its deletion.")
    organization = Organization.objects.select_for_update().get(pk=organization.pk)
    if organization.deletion_requested_at is None:
        organization.deletion_requested_at = timezone.now()
        organization.save(update_fields=["deletion_requested_at"])
        audit_record(organization=organization, action=AuditAction.ORGANIZATION_DELETION_REQUESTED, actor=user,
                     target=f"organization {organization.pk}")  # fmt: skip
    # Nobody works in an organization that is being deleted: members lose access at once.
    Membership.objects.filter(organization=organization).delete()
    organization_id = organization.pk
    transaction.on_commit(lambda: organization_delete_task.delay(organization_id))
    return organization


def organization_delete(*, organization_id: int) -> bool:
    """The job: files, then rows in batches, then the organization. Only for a confirmed deletion."""
    if not Organization.objects.filter(pk=organization_id, deletion_requested_at__isnull=False).exists():
        return False
    files = organization_files_delete(organization_id=organization_id)
    rows = organization_rows_delete(organization_id=organization_id)
    Organization.objects.filter(pk=organization_id).delete()
    logger.info("organization %s deleted: %s files, %s rows", organization_id, files, rows)
    return True


def organizations_resume_deletion() -> int:
    """Beat job: restart deletions whose worker died (the organization is still there)."""
    from accounts.tasks import organization_delete_task

    pending = list(
        Organization.objects.filter(deletion_requested_at__isnull=False).values_list("pk", flat=True)
    )
    for organization_id in pending:
        organization_delete_task.delay(organization_id)
    return len(pending)


# --- leaving and deleting an account -----------------------------------------------------------------
@dataclass(frozen=True)
class SoleOwnership:
    """An organization the user is the only owner of, and the members it could be handed to."""

    organization: Organization
    members: list[Membership]


def sole_ownerships(*, user: User) -> list[SoleOwnership]:
    result = []
    for membership in Membership.objects.filter(user=user, role=Role.OWNER).select_related("organization"):
        organization = membership.organization
        owners = Membership.objects.filter(organization=organization, role=Role.OWNER).count()
        if owners <= 1:
            others = list(
                Membership.objects.filter(organization=organization)
                .exclude(user=user)
                .select_related("user")
                .order_by("user__email")
            )
            result.append(SoleOwnership(organization=organization, members=others))
    return result


HANDOVER_DELETE = "delete"


@transaction.atomic
def organization_handover(*, organization: Organization, from_user: User, to_membership: Membership) -> None:
    """Make another member an owner before the last owner leaves."""
    from accounts.services import _lock_owners

    _lock_owners(organization.pk)
    if to_membership.organization_id != organization.pk or to_membership.user_id == from_user.pk:
        raise ApplicationError("Hand the organization over to another of its members.")
    Membership.objects.filter(pk=to_membership.pk).update(role=Role.OWNER)
    audit_record(organization=organization, action=AuditAction.OWNERSHIP_HANDED_OVER, actor=from_user,
                 target=f"user {to_membership.user_id}")  # fmt: skip


@transaction.atomic
def user_delete(*, user: User, decisions: dict[int, str]) -> None:
    """Delete the user's account. ``decisions`` maps each organization the user solely owns to the
    membership id of the new owner, or ``HANDOVER_DELETE``; a missing decision refuses the deletion."""
    for sole in sole_ownerships(user=user):
        choice = decisions.get(sole.organization.pk)
        if choice == HANDOVER_DELETE:
            organization_deletion_request(organization=sole.organization, user=user,
                                          confirm_name=sole.organization.name)  # fmt: skip
            continue
        target = next((m for m in sole.members if str(m.pk) == str(choice)), None)
        if target is None:
            raise ApplicationError(
                f"Choose who takes over {sole.organization.name}, or delete it, before deleting your account."
            )
        organization_handover(organization=sole.organization, from_user=user, to_membership=target)
    for membership in Membership.objects.filter(user=user).select_related("organization"):
        audit_record(organization=membership.organization_id, action=AuditAction.MEMBER_REMOVED, actor=user,
                     target=f"user {user.pk}", detail={"reason": "account deleted"})  # fmt: skip
    user.delete()  # memberships, e-mail addresses, sessions' owner and MFA devices cascade
