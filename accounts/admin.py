"""Admin for organizations, members, invitations and API keys (tenant-scoped) and users (operators)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django import forms
from django.contrib import admin, messages
from django.contrib.auth.admin import GroupAdmin as DjangoGroupAdmin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from unfold.admin import ModelAdmin
from unfold.decorators import display
from unfold.forms import AdminPasswordChangeForm, UserChangeForm, UserCreationForm

from accounts.admin_base import TenantScopedAdmin
from accounts.audit import AUDIT_READ_ROLES, audit_record
from accounts.deletion import organization_deletion_request
from accounts.exceptions import ApplicationError
from accounts.models import ApiKey, AuditAction, AuditEvent, Invitation, Membership, Organization, Role, User
from accounts.selectors import active_membership, active_organization
from accounts.services import (
    api_key_create,
    api_key_revoke,
    invitation_create,
    invitation_revoke,
    membership_change_role,
    membership_remove,
)

if TYPE_CHECKING:
    from django.http import HttpRequest

OWNER_ONLY = frozenset({Role.OWNER})


class OrganizationDeleteForm(forms.Form):
    confirm_name = forms.CharField(label="Type the organization's name to confirm", max_length=200)


@admin.register(Organization)
class OrganizationAdmin(TenantScopedAdmin):
    tenant_path = "pk"
    write_roles = OWNER_ONLY
    list_display = ["name", "slug", "retention", "created_at"]
    search_fields = ["name", "slug"]
    readonly_fields = ["created_at"]
    fieldsets = [
        (None, {"fields": ["name", "slug", "created_at"]}),
        (
            "Privacy",
            {
                "fields": ["conversation_retention_days", "audit_retention_days"],
                "description": "How long Parlor keeps data. Empty means kept forever (the default for "
                "conversations); a bot may set its own period for its conversations.",
            },
        ),
        (
            "Opening hours",
            {
                "fields": ["opening_hours", "opening_hours_timezone"],
                "description": "When people answer visitors who ask for one (human handoff). Outside these "
                "hours, or when no member has the admin open, the chat tells the visitor nobody is "
                "available right now.",
            },
        ),
    ]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        fields = list(super().get_readonly_fields(request, obj))
        return fields if self.is_operator(request) else [*fields, "slug"]

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return self.is_operator(request)  # customers get organizations by signing up or by invitation

    @display(description="Conversations kept")
    def retention(self, obj: Organization) -> str:
        days = obj.conversation_retention_days
        return "Forever" if days is None else f"{days} days"

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)  # one organization at a time, confirmed by its name
        return actions

    def delete_view(self, request: HttpRequest, object_id: str, extra_context: Any = None) -> Any:
        """Deleting an organization is a confirmed background job, not a cascade inside this request."""
        organization = self.get_object(request, object_id)
        if organization is None or not self.has_delete_permission(request, organization):
            raise PermissionDenied("Only an owner can delete the organization.")
        form = OrganizationDeleteForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                organization_deletion_request(
                    organization=organization,
                    user=request.user,
                    confirm_name=form.cleaned_data["confirm_name"],
                )
            except ApplicationError as exc:
                form.add_error("confirm_name", exc.message)
            else:
                messages.success(request, f"{organization.name} is being deleted with all its data.")
                return HttpResponseRedirect(reverse("admin:index"))
        context = {
            **self.admin_site.each_context(request),
            "title": f"Delete {organization.name}",
            "organization": organization,
            "form": form,
            "opts": self.opts,
        }
        return TemplateResponse(request, "accounts/admin/organization_delete.html", context)

    def save_model(self, request: HttpRequest, obj: Organization, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        retention = {"conversation_retention_days", "audit_retention_days"} & set(form.changed_data)
        if change and retention:
            audit_record(organization=obj, action=AuditAction.RETENTION_CHANGED, request=request,
                         target=f"organization {obj.pk}",
                         detail={name: getattr(obj, name) for name in sorted(retention)})  # fmt: skip


@admin.register(AuditEvent)
class AuditEventAdmin(TenantScopedAdmin):
    """The organization's audit log: read-only, for owners and admins (members do not see it)."""

    read_only = True
    list_display = ["created_at", "actor_label", "action", "target", "ip_address"]
    list_filter = ["action"]
    search_fields = ["actor_label", "target"]
    fields = ["created_at", "actor_label", "action", "target", "detail", "ip_address"]
    readonly_fields = fields

    def _reader(self, request: HttpRequest) -> bool:
        if self.is_operator(request):
            return True
        membership = active_membership(request) if request.user.is_active else None
        return membership is not None and membership.role in AUDIT_READ_ROLES

    def has_module_permission(self, request: HttpRequest) -> bool:
        return self._reader(request)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._reader(request)

    # Append-only for the application, operators included.
    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Membership)
class MembershipAdmin(TenantScopedAdmin):
    write_roles = OWNER_ONLY
    list_display = ["user", "role", "created_at"]
    list_filter = ["role"]
    search_fields = ["user__email", "user__full_name"]
    autocomplete_fields = ["user"]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return ["user", "created_at"] if obj is not None else ["created_at"]

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return self.is_operator(request)  # people join through invitations

    def save_model(self, request: HttpRequest, obj: Membership, form: Any, change: bool) -> None:
        if change and "role" in form.changed_data:
            role = obj.role
            obj.role = Membership.objects.get(pk=obj.pk).role
            try:
                membership_change_role(membership=obj, role=role, actor=request.user)
            except ApplicationError as exc:
                messages.error(request, exc.message)
            obj.refresh_from_db()
            return
        super().save_model(request, obj, form, change)

    def delete_model(self, request: HttpRequest, obj: Membership) -> None:
        try:
            membership_remove(membership=obj, actor=request.user)
        except ApplicationError as exc:
            messages.error(request, exc.message)

    def delete_queryset(self, request: HttpRequest, queryset: Any) -> None:
        for membership in queryset:
            self.delete_model(request, membership)


class InvitationForm(forms.ModelForm):
    request: HttpRequest | None = None

    class Meta:
        model = Invitation
        fields = ["organization", "email", "role"]

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        request = self.request
        organization = active_organization(request) if request else None
        email = data.get("email")
        if organization and email and organization.memberships.filter(user__email__iexact=email).exists():
            raise ValidationError({"email": f"{email} is already a member."})
        membership = active_membership(request) if request else None
        if data.get("role") == Role.OWNER and membership is not None and membership.role != Role.OWNER:
            raise ValidationError({"role": "Only owners can invite owners."})
        return data


@admin.register(Invitation)
class InvitationAdmin(TenantScopedAdmin):
    form = InvitationForm
    list_display = ["email", "role", "display_status", "invited_by", "created_at", "expires_at"]
    list_filter = ["role"]
    search_fields = ["email"]
    actions = ["revoke", "resend"]
    readonly_fields = ["invited_by", "created_at", "expires_at", "accepted_at", "accepted_by", "revoked_at"]

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any):
        form_class = super().get_form(request, obj, change, **kwargs)
        form_class.request = request
        return form_class

    def get_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        fields = ["email", "role"] if obj is None else ["email", "role", *self.readonly_fields]
        return ["organization", *fields] if self.is_operator(request) else fields

    @display(description="Status", label={"pending": "info", "accepted": "success", "expired": "warning"})
    def display_status(self, obj: Invitation) -> str:
        return obj.status

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False if obj is not None else super().has_change_permission(request, obj)

    def save_model(self, request: HttpRequest, obj: Invitation, form: Any, change: bool) -> None:
        issued = invitation_create(
            organization=active_organization(request) if not self.is_operator(request) else obj.organization,
            email=obj.email,
            role=obj.role,
            invited_by=request.user,
            site_url=request.build_absolute_uri("/"),
        )
        for field in Invitation._meta.concrete_fields:
            setattr(obj, field.attname, getattr(issued.invitation, field.attname))
        obj._state.adding = False
        messages.info(request, f"An invitation was sent to {obj.email}.")

    @admin.action(description="Revoke selected invitations")
    def revoke(self, request: HttpRequest, queryset: Any) -> None:
        if not self.has_delete_permission(request):
            raise PermissionDenied("Not allowed.")
        for invitation in queryset:
            invitation_revoke(invitation=invitation, actor=request.user)
        messages.success(request, "Invitations revoked.")

    @admin.action(description="Send selected invitations again (new link, new expiry)")
    def resend(self, request: HttpRequest, queryset: Any) -> None:
        if not self.has_delete_permission(request):
            raise PermissionDenied("Not allowed.")
        sent = 0
        for invitation in queryset.filter(accepted_at=None):
            try:
                invitation_create(
                    organization=invitation.organization,
                    email=invitation.email,
                    role=invitation.role,
                    invited_by=request.user,
                    site_url=request.build_absolute_uri("/"),
                )
            except ApplicationError as exc:
                messages.error(request, exc.message)
            else:
                sent += 1
        messages.success(request, f"{sent} invitation(s) sent again.")

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        actions = super().get_actions(request)
        if not self.has_delete_permission(request):
            actions.pop("revoke", None)
            actions.pop("resend", None)
        return actions


class ApiKeyForm(forms.ModelForm):
    request: HttpRequest | None = None

    class Meta:
        model = ApiKey
        fields = ["organization", "name", "read_only", "expires_at"]


@admin.register(ApiKey)
class ApiKeyAdmin(TenantScopedAdmin):
    form = ApiKeyForm
    list_display = [
        "name",
        "prefix",
        "display_status",
        "read_only",
        "expires_at",
        "last_used_at",
        "created_at",
    ]
    list_filter = ["read_only"]
    search_fields = ["name", "prefix"]
    readonly_fields = ["prefix", "last_used_at", "created_by", "created_at", "revoked_at"]
    actions = ["revoke"]

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any):
        form_class = super().get_form(request, obj, change, **kwargs)
        form_class.request = request
        return form_class

    def get_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        fields = list(super().get_fields(request, obj))
        if obj is None:
            fields = [f for f in fields if f not in self.readonly_fields]
        return fields

    @display(description="Status", label={"active": "success", "revoked": "danger", "expired": "warning"})
    def display_status(self, obj: ApiKey) -> str:
        return obj.status

    def save_model(self, request: HttpRequest, obj: ApiKey, form: Any, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        organization = obj.organization if self.is_operator(request) else active_organization(request)
        issued = api_key_create(
            organization=organization,
            name=obj.name,
            created_by=request.user,
            read_only=obj.read_only,
            expires_at=obj.expires_at,
        )
        for field in ApiKey._meta.concrete_fields:
            setattr(obj, field.attname, getattr(issued.api_key, field.attname))
        obj._state.adding = False
        obj.plain_key = issued.key  # transient: only the response to this request shows it

    def response_add(self, request: HttpRequest, obj: ApiKey, post_url_continue: str | None = None):
        """Show the full key on this one page instead of redirecting; it is never shown again."""
        context = {
            **self.admin_site.each_context(request),
            "title": "API key created",
            "api_key": obj,
            "plain_key": getattr(obj, "plain_key", ""),
            "opts": self.opts,
        }
        return TemplateResponse(request, "accounts/admin/api_key_created.html", context)

    @admin.action(description="Revoke selected API keys")
    def revoke(self, request: HttpRequest, queryset: Any) -> None:
        if not self.has_change_permission(request):
            raise PermissionDenied("Not allowed.")
        for api_key in queryset:
            api_key_revoke(api_key=api_key, actor=request.user)
        messages.success(request, "API keys revoked.")

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        actions = super().get_actions(request)
        if not self.has_change_permission(request):
            actions.pop("revoke", None)
        return actions


# --- operators only (Django model permissions; customers hold none) ----------------------------------
if admin.site.is_registered(Group):
    admin.site.unregister(Group)


@admin.register(Group)
class GroupAdmin(DjangoGroupAdmin, ModelAdmin):
    pass


@admin.register(User)
class UserAdmin(DjangoUserAdmin, ModelAdmin):
    """Operators manage users; customers manage people through memberships and invitations.

    ``search_fields`` serve the membership autocomplete, which only operators reach (customers cannot add
    memberships); the queryset is still scoped for anyone who is not a superuser.
    """

    form = UserChangeForm
    add_form = UserCreationForm
    change_password_form = AdminPasswordChangeForm
    ordering = ["email"]
    list_display = ["email", "full_name", "is_staff", "is_superuser", "is_active", "date_joined"]
    list_filter = ["is_staff", "is_superuser", "is_active"]
    search_fields = ["email", "full_name"]
    fieldsets = [
        (None, {"fields": ["email", "password"]}),
        ("Profile", {"fields": ["full_name"]}),
        ("Permissions", {"fields": ["is_active", "is_staff", "is_superuser", "groups", "user_permissions"]}),
        ("Dates", {"fields": ["last_login", "date_joined"]}),
    ]
    add_fieldsets = [(None, {"classes": ["wide"], "fields": ["email", "password1", "password2"]})]

    def get_queryset(self, request: HttpRequest) -> Any:
        queryset = super().get_queryset(request)
        if request.user.is_superuser:
            return queryset
        organization = active_organization(request)
        if organization is None:
            return queryset.none()
        return queryset.filter(memberships__organization=organization)
