"""Tenant isolation for the Django admin: every tenant-owned ModelAdmin subclasses ``TenantScopedAdmin``.

Usage::

    from accounts.admin_base import TenantScopedAdmin

    @admin.register(Bot)
    class BotAdmin(TenantScopedAdmin):          # model has an ``organization`` FK
        list_display = ["name"]

    @admin.register(Document)
    class DocumentAdmin(TenantScopedAdmin):
        tenant_path = "source__organization"    # no direct FK: the lookup that reaches Organization

What it guarantees for users who are not superusers (operators, ``is_superuser``, see everything):

* ``get_queryset`` returns only rows of the request's active organization
  (``accounts.selectors.active_organization``); with no organization, nothing. Changelist, change,
  delete, history, actions and autocomplete all go through it.
* An object id of another organization answers 404 (``get_object`` raises ``Http404``); custom pages of
  one object fetch it with ``get_object`` too and list themselves in ``tenant_object_urls`` so the
  isolation walk covers them.
* Foreign-key and many-to-many choices (select, raw-id and autocomplete widgets, and list filters) only
  offer rows of the active organization, for every related model that is tenant-owned
  (see ``tenant_q``); users are limited to the organization's members.
* The ``organization`` field is never shown; it is set from the active organization on add (also before
  validation, so unique constraints that include it are checked by the form).
* Permissions follow the role, not Django model permissions: every member may view; ``write_roles``
  (owner and admin by default) may add, change and delete. Set ``write_roles`` on a subclass to narrow it
  (e.g. ``frozenset({Role.OWNER})``), or ``read_only = True`` for a view-only admin.

Inlines inside such an admin use ``TenantScopedTabularInline`` / ``TenantScopedStackedInline`` (same
choice scoping and role rules).

Keep this interface stable: other apps build their admins on it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.contrib import admin
from django.contrib.admin import RelatedOnlyFieldListFilter
from django.core.exceptions import FieldDoesNotExist
from django.db import models
from django.db.models import Q
from django.http import Http404
from unfold.admin import ModelAdmin, StackedInline, TabularInline

from accounts.audit import audit_record
from accounts.models import AuditAction, Membership, Organization, User
from accounts.selectors import WRITE_ROLES, active_membership, active_organization

if TYPE_CHECKING:
    from django.http import HttpRequest

ORGANIZATION_FIELD = "organization"


def default_tenant_path(model: type[models.Model]) -> str | None:
    """The lookup from ``model`` to its Organization, or ``None`` if the model is not tenant-owned."""
    if model is Organization:
        return "pk"
    registered = admin.site._registry.get(model)
    path = getattr(registered, "tenant_path", None)
    if path:
        return path
    tenant_path = getattr(model, "tenant_path", None)  # a model may declare it too
    if isinstance(tenant_path, str) and tenant_path:
        return tenant_path
    try:
        field = model._meta.get_field(ORGANIZATION_FIELD)
    except FieldDoesNotExist:
        return None
    if field.is_relation and field.related_model is Organization:
        return ORGANIZATION_FIELD
    return None


def tenant_q(model: type[models.Model], organization: Organization | None) -> Q | None:
    """A filter that keeps only ``model`` rows of ``organization`` (``None``: not tenant-owned).

    Users are "owned" by the organizations they are members of. With no organization the filter matches
    nothing.
    """
    if model is User or (isinstance(model, type) and issubclass(model, User)):
        if organization is None:
            return Q(pk__in=[])
        return Q(pk__in=Membership.objects.filter(organization=organization).values("user_id"))
    path = default_tenant_path(model)
    if path is None:
        return None
    if organization is None:
        return Q(pk__in=[])
    if path == "pk":
        return Q(pk=organization.pk)
    return Q(**{path: organization})


def scope_queryset(queryset: models.QuerySet, organization: Organization | None) -> models.QuerySet:
    """Filter a queryset of any model to ``organization`` if that model is tenant-owned."""
    condition = tenant_q(queryset.model, organization)
    return queryset if condition is None else queryset.filter(condition)


def scope_choices(request: HttpRequest, db_field: models.Field, kwargs: dict[str, Any]) -> None:
    """Limit a relation field's choices to the active organization (operators see every row)."""
    if request.user.is_superuser:
        return
    queryset = kwargs.get("queryset")
    if queryset is None:
        queryset = db_field.remote_field.model._default_manager.get_queryset()
    kwargs["queryset"] = scope_queryset(queryset, active_organization(request))


class TenantScopedAdmin(ModelAdmin):
    """Unfold ModelAdmin that confines non-superusers to their active organization (see module doc)."""

    #: Lookup from this model to Organization; default "organization" (or "pk" for Organization itself).
    tenant_path: str | None = None
    #: Roles that may add, change and delete. Everyone with a membership may view.
    write_roles: frozenset[str] = WRITE_ROLES
    #: View-only for everyone but superusers (e.g. conversations, analytics).
    read_only: bool = False

    # --- which organization / role ----------------------------------------------------------------
    def get_tenant_path(self) -> str:
        path = self.tenant_path or default_tenant_path(self.model)
        if not path:
            raise TypeError(
                f"{type(self).__name__}: {self.model.__name__} has no organization field; set tenant_path"
            )
        return path

    def is_operator(self, request: HttpRequest) -> bool:
        return bool(request.user.is_active and request.user.is_superuser)

    def tenant_filter(self, organization: Organization) -> Q:
        path = self.get_tenant_path()
        return Q(pk=organization.pk) if path == "pk" else Q(**{path: organization})

    def sets_organization(self) -> bool:
        """True when the model carries the ``organization`` FK itself (so save fills it in)."""
        return self.get_tenant_path() == ORGANIZATION_FIELD

    # --- querysets and objects --------------------------------------------------------------------
    def get_queryset(self, request: HttpRequest) -> models.QuerySet:
        queryset = super().get_queryset(request)
        if self.is_operator(request):
            return queryset
        organization = active_organization(request)
        if organization is None:
            return queryset.none()
        return queryset.filter(self.tenant_filter(organization))

    def tenant_object_urls(self, obj: Any) -> list[str]:
        """The admin's own pages of one object beyond change/history/delete (custom views): the tenant
        isolation walk (accounts/tests/test_admin_isolation.py) opens them as an outsider and expects 404."""
        return []

    def get_object(self, request: HttpRequest, object_id: str, from_field: str | None = None) -> Any:
        # Django would redirect to the index with "doesn't exist"; another tenant's id is simply not found.
        obj = super().get_object(request, object_id, from_field)
        if obj is None:
            raise Http404(f"No {self.model._meta.verbose_name} with this id.")
        return obj

    # --- choices ------------------------------------------------------------------------------------
    def formfield_for_foreignkey(self, db_field: models.ForeignKey, request: HttpRequest, **kwargs: Any):
        scope_choices(request, db_field, kwargs)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def formfield_for_manytomany(self, db_field: models.ManyToManyField, request: HttpRequest, **kwargs: Any):
        scope_choices(request, db_field, kwargs)
        return super().formfield_for_manytomany(db_field, request, **kwargs)

    def get_list_filter(self, request: HttpRequest) -> list[Any]:
        # A plain relation filter lists every row of the related table; offer only values that occur in
        # this (already tenant-filtered) queryset instead.
        filters = list(super().get_list_filter(request))
        if self.is_operator(request):
            return filters
        scoped: list[Any] = []
        for entry in filters:
            if isinstance(entry, str) and self._is_relation_path(entry):
                entry = (entry, RelatedOnlyFieldListFilter)
            scoped.append(entry)
        return scoped

    def _is_relation_path(self, path: str) -> bool:
        model = self.model
        field = None
        for part in path.split("__"):
            try:
                field = model._meta.get_field(part)
            except FieldDoesNotExist:
                return False
            if not field.is_relation:
                return False
            model = field.related_model
        return field is not None and field.is_relation

    # --- the organization field ---------------------------------------------------------------------
    def _strip_organization(self, request: HttpRequest) -> bool:
        return not self.is_operator(request) and self.sets_organization()

    def get_exclude(self, request: HttpRequest, obj: Any = None) -> list[str] | tuple | None:
        exclude = list(super().get_exclude(request, obj) or [])
        if self._strip_organization(request) and ORGANIZATION_FIELD not in exclude:
            exclude.append(ORGANIZATION_FIELD)
        return exclude

    def get_fields(self, request: HttpRequest, obj: Any = None) -> list[Any]:
        fields = list(super().get_fields(request, obj))
        if self._strip_organization(request):
            fields = [f for f in fields if f != ORGANIZATION_FIELD]
        return fields

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> list[Any]:
        fieldsets = super().get_fieldsets(request, obj)
        if not self._strip_organization(request):
            return fieldsets
        cleaned = []
        for name, options in fieldsets:
            options = dict(options)
            options["fields"] = [
                f for f in options.get("fields", ()) if f != ORGANIZATION_FIELD
            ]  # tuples of fields (one row) stay as they are
            cleaned.append((name, options))
        return cleaned

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str] | tuple:
        readonly = super().get_readonly_fields(request, obj)
        if self._strip_organization(request):
            return [f for f in readonly if f != ORGANIZATION_FIELD]
        return readonly

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any):
        form_class = super().get_form(request, obj, change, **kwargs)
        if not self._strip_organization(request):
            return form_class
        organization = active_organization(request)

        class TenantForm(form_class):
            def __init__(self, *args: Any, **kw: Any) -> None:
                super().__init__(*args, **kw)
                # Set before validation so constraints that include the organization are checked.
                if getattr(self.instance, "organization_id", None) is None and organization is not None:
                    self.instance.organization = organization

            def _get_validation_exclusions(self) -> set[str]:
                exclusions = super()._get_validation_exclusions()
                exclusions.discard(ORGANIZATION_FIELD)
                return exclusions

        TenantForm.__name__ = form_class.__name__
        return TenantForm

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        if self._strip_organization(request) and not change:
            organization = active_organization(request)
            if organization is None:
                raise Http404("No active organization.")
            obj.organization = organization
        super().save_model(request, obj, form, change)

    # --- the audit log: every change made in the admin ------------------------------------------------
    def _audit(self, request: HttpRequest, obj: Any, action: str, message: Any = None) -> None:
        organization_id = obj.pk if isinstance(obj, Organization) else getattr(obj, "organization_id", None)
        if organization_id is None:
            active = active_organization(request)
            organization_id = active.pk if active is not None else None
        if organization_id is None or not Organization.objects.filter(pk=organization_id).exists():
            return
        detail: dict[str, Any] = {"via": "admin"}
        if isinstance(message, list):
            changed = sorted({f for entry in message for f in entry.get("changed", {}).get("fields", [])})
            if changed:
                detail["fields"] = changed
        audit_record(organization=organization_id, action=action, request=request,
                     target=f"{obj._meta.verbose_name} {obj.pk}", detail=detail)  # fmt: skip

    def log_addition(self, request: HttpRequest, obj: Any, message: Any) -> Any:
        self._audit(request, obj, AuditAction.OBJECT_CREATED, message)
        return super().log_addition(request, obj, message)

    def log_change(self, request: HttpRequest, obj: Any, message: Any) -> Any:
        self._audit(request, obj, AuditAction.OBJECT_CHANGED, message)
        return super().log_change(request, obj, message)

    def log_deletions(self, request: HttpRequest, queryset: Any) -> Any:
        for obj in queryset:
            self._audit(request, obj, AuditAction.OBJECT_DELETED)
        return super().log_deletions(request, queryset)

    # --- permissions by role ------------------------------------------------------------------------
    def _member(self, request: HttpRequest) -> bool:
        return request.user.is_active and active_membership(request) is not None

    def _can_write(self, request: HttpRequest) -> bool:
        if self.read_only:
            return False
        membership = active_membership(request) if request.user.is_active else None
        return membership is not None and membership.role in self.write_roles

    def has_module_permission(self, request: HttpRequest) -> bool:
        if self.is_operator(request):
            return True
        return self._member(request)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if self.is_operator(request):
            return True
        return self._member(request)

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        if self.is_operator(request):
            return True
        return self._can_write(request)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if self.is_operator(request):
            return True
        return self._can_write(request)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if self.is_operator(request):
            return True
        return self._can_write(request)


class TenantScopedInlineMixin:
    """For inlines inside a ``TenantScopedAdmin``: scoped choices and role-based permissions.

    The parent admin already confines the parent object to the organization; this keeps the inline's own
    foreign-key/many-to-many choices and its add/change/delete rights in line with it.
    """

    write_roles: frozenset[str] = WRITE_ROLES
    read_only: bool = False

    def formfield_for_foreignkey(self, db_field: models.ForeignKey, request: HttpRequest, **kwargs: Any):
        scope_choices(request, db_field, kwargs)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def formfield_for_manytomany(self, db_field: models.ManyToManyField, request: HttpRequest, **kwargs: Any):
        scope_choices(request, db_field, kwargs)
        return super().formfield_for_manytomany(db_field, request, **kwargs)

    def get_queryset(self, request: HttpRequest) -> models.QuerySet:
        queryset = super().get_queryset(request)
        return (
            queryset if request.user.is_superuser else scope_queryset(queryset, active_organization(request))
        )

    def get_formset(self, request: HttpRequest, obj: Any = None, **kwargs: Any):
        """Also scope each inline form's hidden primary-key field, which Django fills from the model's
        default manager (a posted id of another organization's row must not validate)."""
        formset = super().get_formset(request, obj, **kwargs)
        if request.user.is_superuser:
            return formset
        organization = active_organization(request)

        class ScopedFormSet(formset):  # type: ignore[misc, valid-type]
            def add_fields(self, form: Any, index: Any) -> None:
                super().add_fields(form, index)
                pk_field = form.fields.get(self.model._meta.pk.name)
                if pk_field is not None and hasattr(pk_field, "queryset"):
                    pk_field.queryset = scope_queryset(pk_field.queryset, organization)

        return ScopedFormSet

    def _can_write(self, request: HttpRequest) -> bool:
        if request.user.is_superuser:
            return True
        membership = active_membership(request)
        return not self.read_only and membership is not None and membership.role in self.write_roles

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.is_superuser or active_membership(request) is not None

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._can_write(request)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._can_write(request)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._can_write(request)


class TenantScopedTabularInline(TenantScopedInlineMixin, TabularInline):
    pass


class TenantScopedStackedInline(TenantScopedInlineMixin, StackedInline):
    pass
