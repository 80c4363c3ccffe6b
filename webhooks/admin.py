"""Admin for webhooks: endpoints (with their signing secret, "Send test event" and "Rotate secret") and the
delivery log with every attempt ("Redeliver"). Tenant-scoped like every organization's admin."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html
from unfold.decorators import action, display

from accounts.admin_base import TenantScopedAdmin, TenantScopedTabularInline
from accounts.exceptions import ApplicationError
from accounts.selectors import WRITE_ROLES, active_membership
from webhooks.exceptions import EndpointUrlRefused
from webhooks.models import DeliveryStatus, EventType, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from webhooks.services import (
    webhook_deliveries_redeliver,
    webhook_endpoint_rotate_secret,
    webhook_endpoint_save,
    webhook_endpoint_send_test,
    webhook_endpoint_validate,
)

if TYPE_CHECKING:
    from django.http import HttpRequest


def _writer(request: HttpRequest) -> bool:
    if request.user.is_superuser:
        return True
    membership = active_membership(request) if request.user.is_active else None
    return membership is not None and membership.role in WRITE_ROLES


class WebhookEndpointForm(forms.ModelForm):
    url = forms.URLField(
        label="URL", max_length=2000, assume_scheme="https",
        help_text="Where Parlor POSTs events, e.g. https://example.com/hooks/parlor.",
    )  # fmt: skip
    events = forms.MultipleChoiceField(
        choices=EventType.choices,
        widget=forms.CheckboxSelectMultiple,
        initial=list(EventType.values),
        help_text="The event types sent to this endpoint (docs/webhooks.md describes each payload).",
    )

    class Meta:
        model = WebhookEndpoint
        fields = ["organization", "url", "description", "events", "enabled"]

    def _post_clean(self) -> None:
        super()._post_clean()
        if self.errors or getattr(self.instance, "organization_id", None) is None:
            return
        try:
            webhook_endpoint_validate(self.instance)  # the address guard, the events, the limit
        except EndpointUrlRefused as exc:
            self.add_error("url", exc.message)
        except ApplicationError as exc:
            self.add_error(None, exc.message)


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(TenantScopedAdmin):
    form = WebhookEndpointForm
    list_display = ["url", "description", "event_count", "health", "created_at"]
    list_filter = ["enabled"]
    search_fields = ["url", "description"]
    readonly_fields = ["health", "signing_secret", "secret_rotation", "recent_deliveries", "created_at"]
    actions = ["send_test_event"]
    actions_detail = ["send_test_event_detail", "rotate_secret_detail"]

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> list[Any]:
        main = ["organization", "url", "description", "events", "enabled"]
        if self._strip_organization(request):
            main.remove("organization")
        if obj is None:
            return [(None, {"fields": main})]
        # The secret itself is shown to those who may change the endpoint (owners and admins).
        signing = ["signing_secret", "secret_rotation"] if _writer(request) else ["secret_rotation"]
        return [
            (None, {"fields": [*main, "health", "created_at"]}),
            (
                "Signing",
                {
                    "fields": signing,
                    "description": "Every delivery carries a Parlor-Signature header: t=<time>,v1=<HMAC-SHA256 "
                    'of "t.body" with this secret>. See docs/webhooks.md for verification code.',
                },
            ),
            ("Deliveries", {"fields": ["recent_deliveries"]}),
        ]

    @display(description="Events")
    def event_count(self, obj: WebhookEndpoint) -> str:
        return "All" if len(obj.events) == len(EventType.values) else ", ".join(obj.events)

    @display(description="Status")
    def health(self, obj: WebhookEndpoint) -> str:
        if obj.pk is None:
            return "-"
        if not obj.enabled:
            return f"Disabled. {obj.disabled_reason}".strip()
        if obj.consecutive_failures:
            return f"Enabled; the last {obj.consecutive_failures} attempts failed"
        return "Enabled"

    @display(description="Signing secret")
    def signing_secret(self, obj: WebhookEndpoint) -> str:
        return format_html('<code class="font-mono" data-testid="signing-secret">{}</code>', obj.secret)

    @display(description="Previous secret")
    def secret_rotation(self, obj: WebhookEndpoint) -> str:
        if obj.previous_secret_encrypted and obj.previous_secret_expires_at:
            return f"Still signs beside the current one until {obj.previous_secret_expires_at:%Y-%m-%d %H:%M} UTC."
        return "None (rotate the secret to replace it without refusing deliveries)."

    @display(description="Deliveries")
    def recent_deliveries(self, obj: WebhookEndpoint) -> str:
        url = reverse("admin:webhooks_webhookdelivery_changelist") + f"?endpoint__id__exact={obj.pk}"
        pending = obj.deliveries.filter(status=DeliveryStatus.PENDING).count()
        return format_html(
            '<a href="{}" class="text-primary-600">The delivery log</a> ({} pending)', url, pending
        )

    def save_model(self, request: HttpRequest, obj: WebhookEndpoint, form: Any, change: bool) -> None:
        # The tenant form has set the organization already (operators choose it).
        webhook_endpoint_save(endpoint=obj)

    # --- buttons -------------------------------------------------------------------------------------
    def _send_test(self, request: HttpRequest, endpoints: Any) -> None:
        count = 0
        for endpoint in endpoints:
            webhook_endpoint_send_test(endpoint=endpoint)
            count += 1
        messages.success(request, f"A test event is on its way to {count} endpoint(s); see the delivery log.")

    @action(description="Send test event", permissions=["change"])
    def send_test_event(self, request: HttpRequest, queryset: QuerySet[WebhookEndpoint]) -> None:
        self._send_test(request, queryset)

    @action(description="Send test event", url_path="send-test", icon="send", permissions=["change"])
    def send_test_event_detail(self, request: HttpRequest, object_id: str):
        if not _writer(request):
            raise PermissionDenied
        self._send_test(request, [self.get_object(request, object_id)])
        return HttpResponseRedirect(reverse("admin:webhooks_webhookendpoint_change", args=[object_id]))

    @action(description="Rotate secret", url_path="rotate-secret", icon="key", permissions=["change"])
    def rotate_secret_detail(self, request: HttpRequest, object_id: str):
        endpoint = self.get_object(request, object_id)
        if not _writer(request):
            raise PermissionDenied
        if request.method == "POST":
            webhook_endpoint_rotate_secret(endpoint=endpoint)
            messages.success(
                request,
                "New signing secret created. The previous one keeps signing beside it until the time shown.",
            )
            return HttpResponseRedirect(reverse("admin:webhooks_webhookendpoint_change", args=[object_id]))
        context = {
            **self.admin_site.each_context(request),
            "title": "Rotate the signing secret",
            "endpoint": endpoint,
            "rotation_hours": settings.WEBHOOK_SECRET_ROTATION_HOURS,
            "opts": self.opts,
        }
        return TemplateResponse(request, "webhooks/admin/rotate_secret.html", context)


class WebhookAttemptInline(TenantScopedTabularInline):
    model = WebhookAttempt
    extra = 0
    can_delete = False
    fields = ["number", "created_at", "succeeded", "status_code", "latency_ms", "error", "response_excerpt"]
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(TenantScopedAdmin):
    """The delivery log: every event sent to every endpoint, with each attempt. Read-only but for
    "Redeliver" (owners and admins)."""

    inlines = [WebhookAttemptInline]
    list_display = [
        "event_type",
        "event_id",
        "endpoint",
        "status",
        "attempt_count",
        "last_status_code",
        "next_attempt",
        "created_at",
    ]
    list_filter = ["status", "endpoint", "event__type"]
    search_fields = ["event__id"]
    fields = ["event_type", "event_id", "endpoint", "status", "attempt_count", "last_status_code", "last_error",
              "next_attempt", "delivered_at", "created_at", "payload"]  # fmt: skip
    readonly_fields = fields
    actions = ["redeliver"]
    actions_detail = ["redeliver_detail"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[WebhookDelivery]:
        return super().get_queryset(request).select_related("event", "endpoint")

    @display(description="Event")
    def event_type(self, obj: WebhookDelivery) -> str:
        return obj.event.type

    @display(description="Event id")
    def event_id(self, obj: WebhookDelivery) -> str:
        return obj.event.pk

    @display(description="Next attempt")
    def next_attempt(self, obj: WebhookDelivery) -> Any:
        return obj.next_attempt_at if obj.status == DeliveryStatus.PENDING else "-"

    @display(description="Payload data")
    def payload(self, obj: WebhookDelivery) -> str:
        return format_html(
            '<pre class="whitespace-pre-wrap text-xs">{}</pre>', json.dumps(obj.event.data, indent=2)[:20000]
        )

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # a log; "Redeliver" is the one thing to do with it

    def has_redeliver_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return _writer(request)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def _redeliver(self, request: HttpRequest, deliveries: Any) -> None:
        count = webhook_deliveries_redeliver(deliveries=deliveries)
        messages.success(request, f"{count} delivery(ies) queued again with the same event id.")

    @action(description="Redeliver", permissions=["redeliver"])
    def redeliver(self, request: HttpRequest, queryset: QuerySet[WebhookDelivery]) -> None:
        self._redeliver(request, queryset)

    @action(description="Redeliver", url_path="redeliver", icon="replay", permissions=["redeliver"])
    def redeliver_detail(self, request: HttpRequest, object_id: str):
        if not _writer(request):
            raise PermissionDenied
        self._redeliver(request, [self.get_object(request, object_id)])
        return HttpResponseRedirect(reverse("admin:webhooks_webhookdelivery_change", args=[object_id]))
