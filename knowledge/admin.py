"""Knowledge admin: sources with live ingest status, FAQ pairs, re-sync; tenant-scoped via TenantScopedAdmin."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.db import transaction
from django.http import JsonResponse
from django.urls import path
from django.utils.html import format_html
from unfold.admin import TabularInline
from unfold.decorators import action, display

from accounts.admin_base import TenantScopedAdmin
from knowledge.exceptions import IngestError
from knowledge.models import FaqPair, Source, SourceStatus
from knowledge.services import (
    INGEST_FIELDS,
    faq_pairs_from_csv,
    source_delete,
    source_input_problems,
    source_request_ingest,
    upload_problem,
)

if TYPE_CHECKING:
    from django.db.models import QuerySet
    from django.http import HttpRequest

SOURCE_FIELDS = frozenset(field.name for field in Source._meta.concrete_fields)
STATUS_COLOURS = {"queued": "info", "processing": "warning", "ready": "success", "failed": "danger"}


class SourceAdminForm(forms.ModelForm):
    faq_csv = forms.FileField(
        required=False,
        label="Import FAQ pairs from CSV",
        help_text="Columns “question” and “answer” (or the first two columns). Added to the pairs below.",
    )

    class Meta:
        model = Source
        fields = ["kind", "title", "file", "url", "text", "max_pages", "max_depth", "resync_hours"]

    def clean_file(self):
        upload = self.cleaned_data.get("file")
        if (
            upload
            and hasattr(upload, "size")
            and (problem := upload_problem(name=upload.name, size=upload.size))
        ):
            raise forms.ValidationError(problem)
        return upload

    def clean_faq_csv(self):
        upload = self.cleaned_data.get("faq_csv")
        if not upload:
            return []
        try:
            return faq_pairs_from_csv(upload.read(settings.KNOWLEDGE_MAX_FILE_BYTES))
        except IngestError as exc:
            raise forms.ValidationError(exc.reason) from None

    def clean(self):
        data = super().clean()
        problems = source_input_problems(
            kind=data.get("kind"), file=data.get("file") or (self.instance and self.instance.file),
            url=data.get("url", ""), text=data.get("text", ""), resync_hours=data.get("resync_hours") or 0,
        )  # fmt: skip
        for field, message in problems.items():
            self.add_error(field, message)
        return data


class FaqPairInline(TabularInline):
    model = FaqPair
    fields = ["question", "answer"]
    extra = 1
    tab = True

    def get_queryset(self, request: HttpRequest):
        return super().get_queryset(request).select_related("source")


@admin.register(Source)
class SourceAdmin(TenantScopedAdmin):
    form = SourceAdminForm
    inlines = [FaqPairInline]
    list_display = ["title", "kind", "status_badge", "chunk_count", "token_count", "synced_at"]
    list_filter = ["kind", "status"]
    search_fields = ["title", "url"]
    readonly_fields = [
        "status_badge",
        "status_reason",
        "chunk_count",
        "token_count",
        "page_count",
        "synced_at",
    ]
    actions = ["resync"]
    actions_detail = ["resync_detail"]
    fieldsets = [
        (None, {"fields": ["kind", "title", "status_badge", "status_reason"]}),
        ("Content", {"fields": ["file", "url", "text", "faq_csv"]}),
        (
            "Website crawl and re-sync",
            {"fields": ["max_pages", "max_depth", "resync_hours"], "classes": ["collapse"]},
        ),
        ("Index", {"fields": ["chunk_count", "token_count", "page_count", "synced_at"]}),
    ]

    class Media:
        js = ["knowledge/source_status.js"]

    @display(description="Status")
    def status_badge(self, obj: Source) -> str:
        if obj.pk is None:
            return "-"
        label = obj.get_status_display()
        if obj.status == SourceStatus.PROCESSING:
            label = f"{label} {obj.progress}%"
        return format_html(
            '<span data-source-status="{}" title="{}" class="source-status source-status-{}">{}</span>',
            obj.pk, obj.status_reason, obj.status, label,
        )  # fmt: skip

    def get_urls(self):
        return [
            path("status/", self.admin_site.admin_view(self.status_view), name="knowledge_source_status"),
            *super().get_urls(),
        ]

    def status_view(self, request: HttpRequest) -> JsonResponse:
        """Polled by source_status.js so progress shows without a reload (tenant-scoped queryset)."""
        ids = [int(pk) for pk in request.GET.get("ids", "").split(",") if pk.isdigit()][:200]
        rows = self.get_queryset(request).filter(pk__in=ids)
        return JsonResponse(
            {
                str(source.pk): {
                    "status": source.status,
                    "label": source.get_status_display(),
                    "progress": source.progress,
                    "reason": source.status_reason,
                    "chunk_count": source.chunk_count,
                    "token_count": source.token_count,
                }
                for source in rows
            }
        )

    def save_model(self, request: HttpRequest, obj: Source, form: SourceAdminForm, change: bool) -> None:
        changed = not change or any(name in form.changed_data for name in INGEST_FIELDS)
        if change:
            # Only the edited fields: a running ingestion writes the status and counts meanwhile.
            fields = [name for name in form.changed_data if name in SOURCE_FIELDS]
            if fields:
                obj.save(update_fields=[*fields, "updated_at"])
        else:
            super().save_model(request, obj, form, change)
        obj._needs_ingest = changed or bool(form.cleaned_data.get("faq_csv"))

    def save_formset(self, request: HttpRequest, form: Any, formset: Any, change: bool) -> None:
        instances = formset.save(commit=False)
        for instance in instances:
            instance.organization_id = form.instance.organization_id
            instance.save()
        for instance in formset.deleted_objects:
            instance.delete()
        if instances or formset.deleted_objects:
            form.instance._needs_ingest = True

    def save_related(self, request: HttpRequest, form: SourceAdminForm, formsets: Any, change: bool) -> None:
        super().save_related(request, form, formsets, change)
        source = form.instance
        pairs = form.cleaned_data.get("faq_csv") or []
        FaqPair.objects.bulk_create(
            FaqPair(organization_id=source.organization_id, source=source, question=q[:1000], answer=a)
            for q, a in pairs
            if q.strip() and a.strip()
        )
        if getattr(source, "_needs_ingest", False):
            source_request_ingest(source=source)

    def delete_model(self, request: HttpRequest, obj: Source) -> None:
        source_delete(source=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Source]) -> None:
        with transaction.atomic():
            for source in queryset:
                source_delete(source=source)

    def _resync(self, request: HttpRequest, sources) -> None:
        count = 0
        for source in sources:
            source_request_ingest(source=source)
            count += 1
        messages.success(request, f"Re-sync queued for {count} source(s).")

    @action(description="Re-sync now", permissions=["change"])
    def resync(self, request: HttpRequest, queryset: QuerySet[Source]) -> None:
        self._resync(request, queryset)

    @action(description="Re-sync now", url_path="resync", permissions=["change"])
    def resync_detail(self, request: HttpRequest, object_id: str):
        from django.shortcuts import redirect
        from django.urls import reverse

        self._resync(request, [self.get_object(request, object_id)])
        return redirect(reverse("admin:knowledge_source_change", args=[object_id]))
