"""Admin for data subject requests: find a visitor by e-mail, visitor id or conversation id, then export
or erase their data — two clicks from the request list. Imported by chatbots/admin.py."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from unfold.decorators import display

from accounts.admin_base import TenantScopedAdmin
from accounts.audit import AUDIT_READ_ROLES
from accounts.selectors import active_membership, active_organization
from chatbots.exceptions import SubjectRequestInvalid, SubjectRequestNotFound
from chatbots.models import DataSubjectRequest, Message, SubjectLookup, SubjectRequestKind
from chatbots.privacy import (
    guess_lookup,
    subject_export_available,
    subject_export_response,
    subject_find,
    subject_request_create,
)

if TYPE_CHECKING:
    from django.http import HttpRequest


class FindVisitorForm(forms.Form):
    identifier = forms.CharField(
        label="E-mail address, visitor id or conversation id", max_length=254,
        widget=forms.TextInput(attrs={"autofocus": True, "autocomplete": "off", "size": 48}),
    )  # fmt: skip
    lookup = forms.ChoiceField(
        label="It is a", choices=[("", "Detect automatically"), *SubjectLookup.choices], required=False
    )

    def lookup_kind(self) -> str:
        return self.cleaned_data.get("lookup") or guess_lookup(self.cleaned_data["identifier"])


@admin.register(DataSubjectRequest)
class DataSubjectRequestAdmin(TenantScopedAdmin):
    """Visitors' requests to see or delete their data; made through the find page, done by Celery jobs."""

    list_display = ("created_at", "kind", "lookup", "subject_hint", "status_badge", "progress_label",
                    "conversation_count", "message_count", "download")  # fmt: skip
    list_filter = ("kind", "status")
    fields = ("kind", "lookup", "subject_hint", "status", "progress", "conversation_count", "message_count",
              "error", "requested_via", "created_at", "finished_at", "expires_at")  # fmt: skip
    readonly_fields = fields

    def _privileged(self, request: HttpRequest) -> bool:
        if self.is_operator(request):
            return True
        membership = active_membership(request) if request.user.is_active else None
        return membership is not None and membership.role in AUDIT_READ_ROLES

    def has_module_permission(self, request: HttpRequest) -> bool:
        return self._privileged(request)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._privileged(request)

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return self._privileged(request) and super().has_add_permission(request)

    # The record of a request stays: it is changed only by its job.
    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def tenant_object_urls(self, obj: DataSubjectRequest) -> list[str]:
        return [reverse("admin:chatbots_datasubjectrequest_download", args=[obj.pk])]

    def get_urls(self) -> list[Any]:
        return [
            path(
                "<path:object_id>/download/",
                self.admin_site.admin_view(self.download_view),
                name="chatbots_datasubjectrequest_download",
            ),
            *super().get_urls(),
        ]

    def add_view(self, request: HttpRequest, form_url: str = "", extra_context: Any = None) -> HttpResponse:
        """Find the visitor (first click), then export or erase what was found (second click)."""
        if not self.has_add_permission(request):
            raise PermissionDenied("Only owners and admins handle data requests.")
        organization = active_organization(request)
        if organization is None and not self.is_operator(request):
            raise PermissionDenied("No active organization.")
        form = FindVisitorForm(request.POST or request.GET or None)
        found = None
        if form.is_bound and form.is_valid() and organization is not None:
            lookup, value = form.lookup_kind(), form.cleaned_data["identifier"]
            action = request.POST.get("action", "")
            try:
                if action in SubjectRequestKind.values:
                    subject_request_create(organization=organization, kind=action, lookup=lookup, value=value,
                                           user=request.user)  # fmt: skip
                    done = "exported" if action == SubjectRequestKind.EXPORT else "erased"
                    messages.success(
                        request, f"The visitor's data is being {done}; this list shows the progress."
                    )
                    return HttpResponseRedirect(reverse("admin:chatbots_datasubjectrequest_changelist"))
                subject = subject_find(organization_id=organization.pk, lookup=lookup, value=value)
                found = {
                    "lookup": SubjectLookup(lookup).label,
                    "conversations": len(subject.conversation_ids),
                    "messages": Message.objects.filter(conversation_id__in=subject.conversation_ids).count(),
                    "visitor_ids": len(subject.visitor_ids),
                }
            except SubjectRequestInvalid as exc:
                form.add_error("identifier", exc.message)
        context = {
            **self.admin_site.each_context(request),
            "title": "Find a visitor's data",
            "form": form,
            "found": found,
            "opts": self.opts,
        }
        return TemplateResponse(request, "chatbots/admin/subject_request_find.html", context)

    def download_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        subject_request = self.get_object(
            request, object_id
        )  # tenant-scoped: another organization's is a 404
        if subject_request is None:
            raise PermissionDenied("No such request.")
        try:
            subject_export_available(request=subject_request)
        except SubjectRequestNotFound as exc:
            return HttpResponse(exc.message, status=410, content_type="text/plain")
        return subject_export_response(subject_request)

    @display(
        description="Status",
        label={"queued": "info", "running": "warning", "done": "success", "failed": "danger"},
    )
    def status_badge(self, obj: DataSubjectRequest) -> str:
        return obj.status

    @display(description="Progress")
    def progress_label(self, obj: DataSubjectRequest) -> str:
        return f"{obj.progress}%"

    @display(description="Download")
    def download(self, obj: DataSubjectRequest) -> str:
        try:
            subject_export_available(request=obj)
        except SubjectRequestNotFound:
            return "–"
        url = reverse("admin:chatbots_datasubjectrequest_download", args=[obj.pk])
        return format_html('<a class="underline" href="{}">Download</a>', url)
