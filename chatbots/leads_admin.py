"""Admin for leads: the list (filter, search, CSV export of what the filters show), a lead's page with the
reply-by-e-mail form, and the same form on the transcript of an identified visitor's conversation.
Imported by chatbots/admin.py. The work is done by chatbots.leads."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from unfold.contrib.filters.admin import RangeDateFilter
from unfold.decorators import display
from unfold.widgets import UnfoldAdminTextareaWidget, UnfoldAdminTextInputWidget

from accounts.admin_base import TenantScopedAdmin
from chatbots.exceptions import ReplyNotSent
from chatbots.leads import MAX_REPLY_CHARS, MAX_SUBJECT_CHARS, lead_reply_send, leads_csv_rows
from chatbots.models import Lead

if TYPE_CHECKING:
    from django.db.models import QuerySet
    from django.http import HttpRequest


class EmailReplyForm(forms.Form):
    """The reply an operator writes to a visitor; sent by e-mail (chatbots.leads)."""

    subject = forms.CharField(
        max_length=MAX_SUBJECT_CHARS, required=False, widget=UnfoldAdminTextInputWidget(attrs={"size": 60})
    )
    body = forms.CharField(
        label="Reply", max_length=MAX_REPLY_CHARS, widget=UnfoldAdminTextareaWidget(attrs={"rows": 8})
    )


def reply_page(
    request: HttpRequest, model_admin: Any, *, original: Any, reply_to: str, replies: Any, reply_url: str
) -> TemplateResponse:
    """The reply form on a page of its own (GET of a reply URL; the lead's and transcript's pages embed it)."""
    context = {
        **model_admin.admin_site.each_context(request),
        "opts": model_admin.opts,
        "title": f"Reply by e-mail to {reply_to}" if reply_to else "Reply by e-mail",
        "original": original,
        "reply_to": reply_to,
        "replies": replies,
        "reply_url": reply_url,
        "reply_form": EmailReplyForm(),
    }
    return TemplateResponse(request, "chatbots/admin/email_reply.html", context)


@admin.register(Lead)
class LeadAdmin(TenantScopedAdmin):
    """Leads left in the widget: who, what they asked, the consent they gave; answer them by e-mail. Every
    member may read and reply (operators answer visitors); owners and admins may delete."""

    list_display = (
        "created_at",
        "name",
        "email",
        "question",
        "bot",
        "reason",
        "status_badge",
        "conversation_link",
    )
    list_display_links = ("created_at", "name")
    list_filter = ("status", "bot", "reason", ("created_at", RangeDateFilter))
    list_filter_submit = True
    search_fields = ("name", "email", "message", "visitor_id")
    fields = ("bot", "name", "email", "message", "reason", "status", "language", "consent_given", "consent_at",
              "consent_text", "visitor_id", "conversation", "created_at", "replied_at")  # fmt: skip
    readonly_fields = fields
    change_form_template = "chatbots/admin/lead_change_form.html"
    change_list_template = "chatbots/admin/lead_changelist.html"

    def get_queryset(self, request: HttpRequest) -> QuerySet[Lead]:
        return super().get_queryset(request).select_related("bot")

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_urls(self) -> list[Any]:
        return [
            path("export.csv", self.admin_site.admin_view(self.export_view), name="chatbots_lead_export"),
            path(
                "<path:object_id>/reply/",
                self.admin_site.admin_view(self.reply_view),
                name="chatbots_lead_reply",
            ),
            *super().get_urls(),
        ]

    def tenant_object_urls(self, obj: Lead) -> list[str]:
        return [reverse("admin:chatbots_lead_reply", args=[obj.pk])]

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict | None = None
    ) -> HttpResponse:
        lead = self.get_object(request, object_id)  # tenant-scoped: another organization's is a 404
        context = {
            **(extra_context or {}),
            "reply_form": EmailReplyForm(
                initial={"subject": f"Re: your question to {lead.organization.name}"}
            ),
            "replies": lead.replies.select_related("sent_by").order_by("created_at"),
        }
        return super().change_view(request, object_id, form_url, extra_context=context)

    def reply_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """POST from a lead's page: e-mail the visitor; GET goes back to the lead."""
        lead = self.get_object(request, object_id)
        if lead is None:
            raise PermissionDenied
        back = reverse("admin:chatbots_lead_change", args=[lead.pk])
        if request.method != "POST":
            return reply_page(
                request, self, original=lead, reply_to=lead.email, replies=lead.replies.order_by("created_at"),
                reply_url=request.path,
            )  # fmt: skip
        form = EmailReplyForm(request.POST)
        if not form.is_valid():
            self.message_user(request, "Write the reply first.", messages.ERROR)
            return redirect(back)
        try:
            lead_reply_send(lead=lead, user=request.user, **form.cleaned_data)
        except ReplyNotSent as exc:
            self.message_user(request, exc.message, messages.ERROR)
        else:
            self.message_user(request, f"Your reply was sent to {lead.email}.", messages.SUCCESS)
        return redirect(back)

    def export_view(self, request: HttpRequest) -> HttpResponse:
        """The leads the list's current filters and search show, as CSV (streamed)."""
        changelist = self.get_changelist_instance(request)
        response = StreamingHttpResponse(
            leads_csv_rows(changelist.get_queryset(request)), content_type="text/csv; charset=utf-8"
        )
        response["Content-Disposition"] = f'attachment; filename="leads-{timezone.now():%Y%m%d-%H%M}.csv"'
        response["Cache-Control"] = "private, no-store"
        return response

    @display(description="Question")
    def question(self, obj: Lead) -> str:
        return (obj.message[:80] + "…") if len(obj.message) > 80 else obj.message

    @display(description="Status", label={"new": "warning", "replied": "success"})
    def status_badge(self, obj: Lead) -> str:
        return obj.status

    @display(description="Conversation")
    def conversation_link(self, obj: Lead) -> str:
        if not obj.conversation_id:
            return "–"
        url = reverse("admin:chatbots_conversation_change", args=[obj.conversation_id])
        return format_html('<a class="underline" href="{}">Transcript</a>', url)
