"""Knowledge admin: sources with live ingest status, FAQ pairs, re-sync; tenant-scoped via TenantScopedAdmin."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.db import transaction
from django.http import JsonResponse
from django.urls import path
from django.utils.html import format_html, format_html_join
from unfold.decorators import action, display

from accounts.admin_base import TenantScopedAdmin, TenantScopedTabularInline
from knowledge.exceptions import IngestError
from knowledge.media import duration_label
from knowledge.models import (
    FaqPair,
    Source,
    SourceKind,
    SourceStatus,
    Transcription,
    TranscriptionSettings,
    timestamp,
)
from knowledge.selectors import media_link, source_latest_transcription
from knowledge.services import (
    faq_pairs_from_csv,
    source_create,
    source_delete,
    source_input_problems,
    source_request_ingest,
    source_update,
    transcription_base_url_problem,
    transcription_settings_set,
    upload_problem,
)

if TYPE_CHECKING:
    from django.db.models import QuerySet
    from django.http import HttpRequest

SOURCE_FIELDS = frozenset(field.name for field in Source._meta.concrete_fields)
STATUS_COLOURS = {"queued": "info", "processing": "warning", "ready": "success", "failed": "danger"}


def _kept_pairs(formset: Any) -> list[tuple[str, str]]:
    """The (question, answer) rows an FAQ inline keeps: existing and new rows, without deleted and blank
    ones."""
    pairs = []
    for inline_form in formset.forms:
        if inline_form.instance.pk is None and not inline_form.has_changed():
            continue  # an extra row left empty
        if formset.can_delete and formset._should_delete_form(inline_form):
            continue
        question = inline_form.cleaned_data.get("question", "")
        answer = inline_form.cleaned_data.get("answer", "")
        if question.strip() and answer.strip():
            pairs.append((question, answer))
    return pairs


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
            and (
                problem := upload_problem(name=upload.name, size=upload.size, kind=self.data.get("kind", ""))
            )
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


class FaqPairInline(TenantScopedTabularInline):
    model = FaqPair
    fields = ["question", "answer", "answered_count"]
    readonly_fields = ["answered_count"]
    extra = 1
    tab = True

    def get_queryset(self, request: HttpRequest):
        return super().get_queryset(request).select_related("source")


@admin.register(Source)
class SourceAdmin(TenantScopedAdmin):
    form = SourceAdminForm
    inlines = [FaqPairInline]
    list_display = ["title", "kind", "status_badge", "chunks", "tokens", "synced_at"]
    list_filter = ["kind", "status"]
    search_fields = ["title", "url"]
    readonly_fields = [
        "status_badge",
        "status_reason",
        "chunks",
        "tokens",
        "page_count",
        "text_search_config",
        "synced_at",
        "media_length",
        "transcription_cost",
        "transcript",
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
        ("Index", {"fields": ["chunks", "tokens", "page_count", "text_search_config", "synced_at"]}),
        (
            "Recording",
            {"fields": ["media_length", "transcription_cost", "transcript"], "classes": ["collapse"]},
        ),
    ]
    # Only the fields of the chosen kind are shown (unfold's Alpine.js; without scripts, all of them).
    conditional_fields = {
        "file": "kind == 'file' || kind == 'audio' || kind == 'video'",
        "url": "kind == 'url' || kind == 'website' || kind == 'media_url'",
        "text": "kind == 'text'",
        "faq_csv": "kind == 'faq'",
        "max_pages": "kind == 'website'",
        "max_depth": "kind == 'website'",
        "resync_hours": "kind == 'url' || kind == 'website'",
    }

    class Media:
        js = ["knowledge/source_status.js"]
        css = {"all": ["knowledge/source_status.css"]}

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

    def _live_count(self, obj: Source, name: str) -> str:
        # Updated in place by source_status.js while the source is being processed.
        return format_html(
            '<span data-source-count="{}" data-field="{}">{}</span>', obj.pk, name, getattr(obj, name)
        )

    @display(description="Chunks", ordering="chunk_count")
    def chunks(self, obj: Source) -> str:
        return self._live_count(obj, "chunk_count")

    @display(description="Tokens", ordering="token_count")
    def tokens(self, obj: Source) -> str:
        return self._live_count(obj, "token_count")

    @display(description="Length")
    def media_length(self, obj: Source) -> str:
        return duration_label(obj.media_seconds) if obj.media_seconds is not None else "-"

    @display(description="Transcription")
    def transcription_cost(self, obj: Source) -> str:
        done = source_latest_transcription(source=obj)
        if done is None:
            return "-"
        cost = f"{done.cost_usd} USD" if done.cost_usd is not None else "cost unknown"
        return f"{done.model} at {done.provider}: {duration_label(done.duration_seconds)}, {cost}"

    @display(description="Transcript")
    def transcript(self, obj: Source) -> str:
        """Each segment with its moment; for a media URL the moment opens the recording there."""
        done = source_latest_transcription(source=obj)
        if done is None or not done.segments:
            return "-"
        if obj.kind == SourceKind.MEDIA_URL and obj.url:
            lines = format_html_join(
                "", '<p><a href="{}" target="_blank" rel="noopener noreferrer">{}</a> {}</p>',
                ((media_link(obj.url, s["start"]), timestamp(s["start"]), s["text"]) for s in done.segments),
            )  # fmt: skip
        else:
            lines = format_html_join(
                "",
                "<p><strong>{}</strong> {}</p>",
                ((timestamp(s["start"]), s["text"]) for s in done.segments),
            )
        return format_html('<div class="source-transcript">{}</div>', lines)

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
                    "page_count": source.page_count,
                }
                for source in rows
            }
        )

    # The source and its FAQ pairs are written by the same services as the API (source_create and
    # source_update), once the inline rows are known: save_model only validates, save_related writes.
    def save_model(self, request: HttpRequest, obj: Source, form: SourceAdminForm, change: bool) -> None:
        pass

    def save_formset(self, request: HttpRequest, form: Any, formset: Any, change: bool) -> None:
        formset.save(commit=False)  # only fills new/changed/deleted_objects for the change message

    def save_related(self, request: HttpRequest, form: SourceAdminForm, formsets: Any, change: bool) -> None:
        super().save_related(request, form, formsets, change)  # save_formset above: nothing is written
        data = form.cleaned_data
        faq_pairs = None
        inline = [formset for formset in formsets if formset.model is FaqPair]
        if data.get("faq_csv") or any(formset.has_changed() for formset in inline):
            faq_pairs = [pair for formset in inline for pair in _kept_pairs(formset)] + list(data["faq_csv"])
        fields = {name: data[name] for name in form.changed_data if name in SOURCE_FIELDS}
        if "file" in fields and not fields["file"]:
            fields.pop("file")  # a cleared file input: a file source keeps its file
        source = form.instance
        if change:
            # A fresh copy: the form already wrote the new values onto form.instance, so the service
            # could not see what changed (and a running ingestion wrote status and counts meanwhile).
            source_update(source=Source.objects.get(pk=source.pk), data=fields, faq_pairs=faq_pairs)
            return
        created = source_create(
            organization=source.organization, kind=data["kind"], title=data.get("title") or "",
            file=data.get("file") or None, url=data.get("url") or "", text=data.get("text") or "",
            faq_pairs=faq_pairs, max_pages=data["max_pages"], max_depth=data["max_depth"],
            resync_hours=data.get("resync_hours") or 0,
        )  # fmt: skip
        source.pk = created.pk
        source._state.adding = False

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


class TranscriptionSettingsForm(forms.ModelForm):
    api_key = forms.CharField(
        label="API key",
        required=False,
        strip=True,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}, render_value=False),
        help_text="Stored encrypted and never shown again. Leave empty to keep the current key.",
    )
    clear_api_key = forms.BooleanField(required=False, label="Remove the stored key")

    class Meta:
        model = TranscriptionSettings
        fields = ["base_url", "model", "usd_per_minute"]
        labels = {"base_url": "Endpoint URL", "usd_per_minute": "Price per minute (USD)"}

    def clean_base_url(self) -> str:
        url = self.cleaned_data.get("base_url", "")
        if url and (problem := transcription_base_url_problem(url)):
            raise forms.ValidationError(problem)
        return url


@admin.register(TranscriptionSettings)
class TranscriptionSettingsAdmin(TenantScopedAdmin):
    """The organization's own speech-to-text provider for audio and video sources."""

    form = TranscriptionSettingsForm
    list_display = ["model", "base_url", "key_status", "usd_per_minute", "updated_at"]
    fields = ["base_url", "model", "key_status", "api_key", "clear_api_key", "usd_per_minute"]
    readonly_fields = ["key_status"]

    @display(description="API key")
    def key_status(self, obj: TranscriptionSettings) -> str:
        return "Set (hidden)" if obj.api_key_encrypted else "Not set"

    def save_model(
        self, request: HttpRequest, obj: TranscriptionSettings, form: TranscriptionSettingsForm, change: bool
    ) -> None:
        data = form.cleaned_data
        api_key = "" if data.get("clear_api_key") else (data.get("api_key") or None)
        saved = transcription_settings_set(
            organization=obj.organization, base_url=data["base_url"], model=data["model"],
            usd_per_minute=data["usd_per_minute"], api_key=api_key,
        )  # fmt: skip
        obj.pk = saved.pk
        obj._state.adding = False


@admin.register(Transcription)
class TranscriptionAdmin(TenantScopedAdmin):
    """What each transcription cost and how long the recording was (read-only)."""

    read_only = True
    list_display = ["source", "model", "provider", "length", "cost_usd", "parts", "created_at"]
    list_filter = ["model"]
    fields = ["source", "model", "provider", "length", "cost_usd", "parts", "created_at", "transcript_text"]
    readonly_fields = fields
    list_select_related = ["source"]

    @display(description="Length")
    def length(self, obj: Transcription) -> str:
        return duration_label(obj.duration_seconds)

    @display(description="Transcript")
    def transcript_text(self, obj: Transcription) -> str:
        return format_html("<pre style='white-space: pre-wrap'>{}</pre>", obj.transcript)
