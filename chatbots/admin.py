"""Bot admin: tenant-scoped, provider keys write-only, embed snippet and a "test connection" action."""

from __future__ import annotations

import functools
from datetime import date
from typing import TYPE_CHECKING, Any

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.templatetags.admin_urls import add_preserved_filters
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.db import models
from django.http import Http404, HttpResponse
from django.shortcuts import redirect
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.functional import cached_property
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import get_language_info
from django.utils.translation import gettext as _
from unfold.contrib.filters.admin import RangeDateFilter
from unfold.decorators import action, display
from unfold.templatetags.unfold_list import CHECKBOX_CLASSES, LINK_CLASSES, ROW_CLASSES
from unfold.utils import display_for_field, display_for_value
from unfold.widgets import (
    UnfoldAdminPasswordWidget,
    UnfoldAdminSelectWidget,
    UnfoldAdminTextareaWidget,
    UnfoldAdminTextInputWidget,
    UnfoldBooleanSwitchWidget,
)

from accounts.admin import ApiKeyAdmin, ApiKeyForm
from accounts.admin_base import TenantScopedAdmin
from accounts.models import ApiKey
from accounts.selectors import active_membership, active_organization
from accounts.services import membership_set_handoff_notifications
from chatbots.answer_cache import answer_cache_invalidate
from chatbots.exceptions import ExportUnavailable, MessageNotFound, ReplyNotSent
from chatbots.exports import conversation_export_request, export_file_response
from chatbots.handoff import handoff_state
from chatbots.identity import bot_identity_secret_rotate
from chatbots.leads import conversation_email, conversation_reply_send
from chatbots.leads_admin import EmailReplyForm, reply_page
from chatbots.llm import ConnectionReport, endpoints_for
from chatbots.models import (
    HANDOFF_ACTIVE,
    Bot,
    Conversation,
    ConversationExport,
    ExportFormat,
    ExportStatus,
    HandoffStatus,
    ReviewQueueEntry,
)
from chatbots.origins import refused_origins_recent
from chatbots.question_groups import review_queue
from chatbots.selectors import (
    InboxFilters,
    answer_question,
    api_key_bot_ids,
    bot_faq_sources,
    conversation_answer_get,
    conversation_languages,
    conversation_transcript,
    conversations_for_inbox,
    conversations_handed_over,
    conversations_search,
    conversations_unanswered,
    conversations_with_failure,
    conversations_with_feedback,
    export_available,
)
from chatbots.services import (
    BOT_EDITABLE_FIELDS,
    DEFAULT_IMPROVED_SOURCE_TITLE,
    MAX_IMPROVED_ANSWER_CHARS,
    answer_improve,
    api_key_set_bots,
    bot_create,
    bot_test_connection,
    bot_update,
    bot_validate,
    conversation_delete,
    review_resolve,
    source_set_bots,
)
from chatbots.widget_views import embed_snippet
from config.errors import ApplicationError
from knowledge.admin import SourceAdmin, SourceAdminForm
from knowledge.models import Source

if TYPE_CHECKING:
    from django.db.models import QuerySet
    from django.http import HttpRequest


class LinesField(forms.CharField):
    """A list of strings edited as one item per line."""

    widget = UnfoldAdminTextareaWidget(attrs={"rows": 3})

    def prepare_value(self, value: Any) -> str:
        if isinstance(value, list | tuple):
            return "\n".join(str(item) for item in value)
        return value or ""

    def to_python(self, value: Any) -> list[str]:
        if isinstance(value, list):
            return value
        return [line.strip() for line in str(value or "").splitlines() if line.strip()]


def _key_field(label: str) -> forms.CharField:
    # render_value=False: the stored key is never sent back to the browser, not even masked.
    return forms.CharField(
        label=label,
        required=False,
        strip=True,
        widget=UnfoldAdminPasswordWidget(attrs={"autocomplete": "new-password"}, render_value=False),
        help_text="Stored encrypted and never shown again. Leave empty to keep the current key.",
    )


class BotAdminForm(forms.ModelForm):
    api_key = _key_field("New API key")
    clear_api_key = forms.BooleanField(
        required=False, label="Remove the stored API key", widget=UnfoldBooleanSwitchWidget
    )
    fallback_api_key = _key_field("New fallback API key")
    clear_fallback_api_key = forms.BooleanField(
        required=False, label="Remove the stored fallback key", widget=UnfoldBooleanSwitchWidget
    )
    suggested_questions = LinesField(required=False, help_text="One question per line (at most six).")
    allowed_origins = LinesField(
        required=False,
        help_text="One website per line, e.g. https://www.example.com. Empty: any website may embed the bot.",
    )

    class Meta:
        model = Bot
        fields = ["organization", *BOT_EDITABLE_FIELDS]
        labels = {
            "base_url": "Endpoint URL",
            "fallback_base_url": "Fallback endpoint URL",
            "retrieval_top_k": "Passages per answer",
            "retrieval_min_score": "Minimum relevance",
            "query_rewrite": "Rewrite follow-ups with the model",
            "widget_primary_color": "Primary colour",
            "widget_avatar_url": "Avatar image URL",
        }

    def key_changes(self) -> tuple[str | None, str | None]:
        """(api_key, fallback_api_key) for the services: None keeps the stored key, "" removes it."""
        data = self.cleaned_data
        api_key = "" if data.get("clear_api_key") else (data.get("api_key") or None)
        fallback = "" if data.get("clear_fallback_api_key") else (data.get("fallback_api_key") or None)
        return api_key, fallback

    def _post_clean(self) -> None:
        super()._post_clean()
        if self.errors:
            return
        try:
            bot_validate(self.instance)  # the service's cross-field rules, shown on the form
        except ValidationError as exc:
            self._update_errors(exc)


IDENTITY_UNSET_NOTE = "Not generated yet: use “Generate identity secret” above (or require signed identity)."


@admin.register(Bot)
class BotAdmin(TenantScopedAdmin):
    form = BotAdminForm
    change_form_template = "widget/admin_bot_change_form.html"
    list_display = ["name", "status_badge", "model_label", "key_status", "public_id", "updated_at"]
    list_filter = ["status", "provider"]
    search_fields = ["name", "public_id"]
    readonly_fields = [
        "public_id", "key_status", "fallback_key_status", "created_at", "updated_at", "embed_code", "refused_origins",
        "identity_secret", "identity_secret_status",
    ]  # fmt: skip
    actions = ["test_connection"]
    actions_detail = ["test_connection_detail", "rotate_identity_secret"]
    formfield_overrides = {
        **TenantScopedAdmin.formfield_overrides,
        models.URLField: {
            **TenantScopedAdmin.formfield_overrides.get(models.URLField, {}),
            "assume_scheme": "https",
        },
    }

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> list[Any]:
        """Tabs (basics, knowledge, model, widget, embed) beside the live preview, instead of one long page."""
        knowledge = ["sources"] if any(f.name == "sources" for f in Bot._meta.get_fields()) else []
        general = ["organization", "name", "status"] if self.is_operator(request) else ["name", "status"]
        saved = obj is not None and obj.pk is not None
        may_see_secret = self.is_operator(request) or self._can_write(request)
        secret_field = "identity_secret" if may_see_secret else "identity_secret_status"
        fieldsets = [
            ("Basics", {"classes": ["tab"], "fields": [
                *general, "public_id", "greeting", "suggested_questions", "language", "system_prompt",
                "answer_style", "fallback_reply", "history_turns", "api_system_messages",
                "answer_cache_enabled", "answer_cache_ttl_seconds", "created_at", "updated_at",
            ]}),
            ("Knowledge", {"classes": ["tab"], "fields": [
                *knowledge, "retrieval_top_k", "retrieval_min_score", "query_rewrite",
            ]}),
            ("Model", {
                "classes": ["tab"],
                "fields": ["provider", "base_url", "model", "key_status", "api_key", "clear_api_key",
                           "temperature", "max_output_tokens"],
                "description": "With the deployment default and no key configured, the bot answers offline "
                "from its knowledge. Any OpenAI-compatible endpoint works with “Custom”. Azure OpenAI: "
                "the endpoint is https://YOUR-RESOURCE.openai.azure.com/openai/v1/ and the model is the "
                "deployment name.",
            }),
            ("Fallback model", {
                "classes": ["tab"],
                "fields": ["fallback_provider", "fallback_base_url", "fallback_model", "fallback_key_status",
                           "fallback_api_key", "clear_fallback_api_key"],
                "description": "Used when the model above keeps failing. Set a model to enable it.",
            }),
            ("Widget", {"classes": ["tab"], "fields": [
                "allowed_origins", *(["refused_origins"] if saved else []), "widget_title",
                "widget_primary_color", "widget_position", "widget_launcher_text", "widget_avatar_url",
                "widget_theme",
            ]}),
            ("People", {
                "classes": ["tab"],
                "fields": ["handoff_enabled", "handoff_after_fallback", "handoff_after_thumbs_down"],
                "description": "Hand conversations to a person of your organization, who answers from the "
                "inbox (docs/handoff.md). Opening hours are the organization's setting.",
            }),
            ("Leads & identity", {
                "classes": ["tab"],
                "fields": ["lead_capture", "lead_capture_after", "lead_capture_required", "lead_consent_text",
                           "identity_required", *([secret_field] if saved else [])],
                "description": "Leads are listed under Leads. A signed identity proves a signed-in user of your "
                "site: user_hash = HMAC-SHA256(identity secret, user_id); see docs/leads.md for code.",
            }),
            ("Privacy", {
                "classes": ["tab"],
                "fields": ["retention_days"],
                "description": self._retention_note(request, obj),
            }),
        ]  # fmt: skip
        if saved:
            fieldsets.append(("Embed", {"classes": ["tab"], "fields": ["embed_code"]}))
        return fieldsets

    @display(description="Embed code")
    def embed_code(self, obj: Bot) -> str:
        return render_to_string(
            "widget/admin_embed.html",
            {"snippet": embed_snippet(obj), "chat_url": reverse("chat-page", args=[obj.public_id])},
        )

    @display(description="Refused websites")
    def refused_origins(self, obj: Bot) -> str:
        """Sites the widget refused to load on lately, so the customer can add the one they meant."""
        return render_to_string(
            "widget/admin_refused_origins.html", {"refused": refused_origins_recent(bot=obj)}
        )

    def _retention_note(self, request: HttpRequest, obj: Any) -> str:
        organization = obj.organization if obj is not None else active_organization(request)
        days = getattr(organization, "conversation_retention_days", None)
        kept = "forever" if days is None else f"{days} days"
        return f"Leave empty to follow the organization's setting: conversations are kept {kept}."

    @display(description="Identity secret")
    def identity_secret(self, obj: Bot) -> str:
        """Shown to owners and admins only (it signs identities: whoever has it can pose as any user)."""
        secret = obj.get_identity_secret()
        if not secret:
            return IDENTITY_UNSET_NOTE
        return format_html('<code data-identity-secret class="select-all">{}</code>', secret)

    @display(description="Identity secret")
    def identity_secret_status(self, obj: Bot) -> str:
        return "Set (owners and admins see it)" if obj.identity_secret_encrypted else IDENTITY_UNSET_NOTE

    @action(
        description="Generate identity secret",
        url_path="rotate-identity-secret",
        icon="key",
        permissions=["change"],
    )
    def rotate_identity_secret(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """A new secret (the old one stops working at once: update the site's server with it)."""
        if request.method != "POST":
            return TemplateResponse(
                request, "chatbots/admin/confirm_rotate_identity.html",
                {**self.admin_site.each_context(request), "opts": self.opts, "original": self.get_object(request, object_id),
                 "title": "Generate a new identity secret?"},
            )  # fmt: skip
        bot = self.get_object(request, object_id)  # tenant-scoped: another organization's id is a 404
        if bot is None:
            raise Http404
        bot_identity_secret_rotate(bot=bot)
        self.message_user(
            request, "A new identity secret was generated; hashes made with the old one are now refused.",
            messages.SUCCESS,
        )  # fmt: skip
        return redirect(reverse("admin:chatbots_bot_change", args=[bot.pk]) + "#leads-identity")

    # --- display ----------------------------------------------------------------------------------
    @display(description="Status", label={"active": "success", "paused": "warning"})
    def status_badge(self, obj: Bot) -> str:
        return obj.status

    @display(description="Model")
    def model_label(self, obj: Bot) -> str:
        endpoints = endpoints_for(obj)
        if not endpoints:
            return "Offline (no language model)"
        return f"{obj.get_provider_display().split(' (')[0]} · {endpoints[0].model}"

    @display(description="Stored API key")
    def key_status(self, obj: Bot) -> str:
        return "Set (hidden)" if obj.has_api_key else "Not set"

    @display(description="Stored fallback key")
    def fallback_key_status(self, obj: Bot) -> str:
        return "Set (hidden)" if obj.has_fallback_api_key else "Not set"

    # --- saving through the services --------------------------------------------------------------
    def save_model(self, request: HttpRequest, obj: Bot, form: BotAdminForm, change: bool) -> None:
        api_key, fallback_api_key = form.key_changes()
        data = {name: getattr(obj, name) for name in BOT_EDITABLE_FIELDS if name in form.fields}
        if change:
            bot_update(bot=obj, data=data, api_key=api_key, fallback_api_key=fallback_api_key)
            return
        # Members add bots to their active organization (set on the form); operators choose one.
        organization = obj.organization if obj.organization_id else active_organization(request)
        data.pop("name", None)
        created = bot_create(
            organization=organization,
            name=obj.name,
            api_key=api_key,
            fallback_api_key=fallback_api_key,
            **data,
        )
        # The admin goes on with ``obj`` (related fields, log entry, redirect): make it the saved row.
        for field in Bot._meta.concrete_fields:
            setattr(obj, field.attname, getattr(created, field.attname))
        obj._state.adding = False
        obj._state.db = created._state.db

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        super().save_related(request, form, formsets, change)
        if "sources" in form.changed_data:
            answer_cache_invalidate(bot_id=form.instance.pk)  # its knowledge changed

    # --- test connection --------------------------------------------------------------------------
    def _report(self, request: HttpRequest, bot: Bot, reports: list[ConnectionReport]) -> None:
        for number, report in enumerate(reports):
            role = "Fallback" if number else "Model"
            latency = f" in {report.latency_ms} ms" if report.latency_ms is not None else ""
            text = f"{bot.name} — {role} {report.provider} / {report.model}: {report.message}{latency}"
            self.message_user(request, text, messages.SUCCESS if report.ok else messages.ERROR)

    @admin.action(description="Test connection to the language model", permissions=["change"])
    def test_connection(self, request: HttpRequest, queryset: QuerySet[Bot]) -> None:
        for bot in queryset[:10]:
            self._report(request, bot, bot_test_connection(bot=bot))

    @action(description="Test connection", url_path="test-connection", icon="cable", permissions=["change"])
    def test_connection_detail(self, request: HttpRequest, object_id: str) -> HttpResponse:
        bot = self.get_object(request, object_id)  # tenant-scoped: another organization's id is a 404
        self._report(request, bot, bot_test_connection(bot=bot))
        return redirect(reverse("admin:chatbots_bot_change", args=[bot.pk]))


class FeedbackFilter(admin.SimpleListFilter):
    title = "feedback"
    parameter_name = "feedback"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("down", "Thumbs down"), ("up", "Thumbs up"), ("any", "Any rating")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Conversation]) -> QuerySet[Conversation]:
        if self.value() in ("down", "up", "any"):
            return conversations_with_feedback(queryset, value=self.value())
        return queryset


class UnansweredFilter(admin.SimpleListFilter):
    title = "answered"
    parameter_name = "unanswered"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("yes", "Unanswered (fallback reply or no source)")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Conversation]) -> QuerySet[Conversation]:
        return conversations_unanswered(queryset) if self.value() == "yes" else queryset


class FailureFilter(admin.SimpleListFilter):
    title = "delivery"
    parameter_name = "failed"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("yes", "Failed or incomplete answers")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Conversation]) -> QuerySet[Conversation]:
        return conversations_with_failure(queryset) if self.value() == "yes" else queryset


def language_name(code: str) -> str:
    """A language code as people read it ("de" → "German (de)"), the code alone when Django knows none."""
    try:
        return f"{get_language_info(code)['name']} ({code})"
    except KeyError:
        return code


class HandoffFilter(admin.SimpleListFilter):
    title = "handed over"
    parameter_name = "handoff"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("waiting", "Waiting for a person"), ("taken", "With a person"), ("any", "Ever handed over")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Conversation]) -> QuerySet[Conversation]:
        if self.value() in ("waiting", "taken", "any"):
            return conversations_handed_over(queryset, status=self.value())
        return queryset


class HandoffNotificationsForm(forms.Form):
    email = forms.BooleanField(required=False, label="E-mail me when a visitor asks for a person")
    browser = forms.BooleanField(
        required=False, label="Browser notification while the admin is open",
        help_text="Your browser asks for permission the first time.",
    )  # fmt: skip


class LanguageFilter(admin.SimpleListFilter):
    """The visitor's language: the languages the organization's conversations have (one query)."""

    title = "visitor language"
    parameter_name = "language"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        languages = conversation_languages(model_admin.get_queryset(request))
        return [(code, language_name(code)) for code in languages]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Conversation]) -> QuerySet[Conversation]:
        value = self.value()
        return queryset.filter(language=value) if value else queryset


def _admin_date(value: str | None) -> date | None:
    if not value:
        return None
    try:
        return forms.DateField().clean(value)
    except ValidationError:
        return None


def inbox_filters_from_admin(params: Any) -> InboxFilters:
    """The inbox changelist's query string (its list filters and search) as the selectors' filters."""
    bot_id = params.get("bot__id__exact", "")
    return InboxFilters(
        bot_ids=[int(bot_id)] if bot_id.isdigit() else None,
        channel=params.get("channel__exact", ""),
        since=_admin_date(params.get("last_message_at_from")),
        until=_admin_date(params.get("last_message_at_to")),
        feedback=params.get("feedback", "") if params.get("feedback") in ("up", "down", "any") else "",
        unanswered=params.get("unanswered") == "yes",
        failed=params.get("failed") == "yes",
        language=params.get("language", "")[:8],
        handoff=params.get("handoff", "") if params.get("handoff") in ("waiting", "taken", "any") else "",
        search=params.get("q", ""),
    )


class ImproveAnswerForm(forms.Form):
    """A correction of one answer: the question it should answer, the right answer, and where it goes."""

    question = forms.CharField(
        max_length=1000, widget=UnfoldAdminTextInputWidget,
        help_text="Visitors who ask this, or something close to it, get the answer below.",
    )  # fmt: skip
    answer = forms.CharField(
        max_length=MAX_IMPROVED_ANSWER_CHARS, widget=UnfoldAdminTextareaWidget(attrs={"rows": 8}),
        label="Correct answer",
    )  # fmt: skip
    source = forms.ModelChoiceField(
        queryset=Source.objects.none(), required=False, empty_label="A new FAQ source",
        widget=UnfoldAdminSelectWidget, label="FAQ source",
        help_text="One of this bot's FAQ sources; a pair there with the same question is replaced.",
    )  # fmt: skip
    new_source_title = forms.CharField(
        max_length=255, required=False, initial=DEFAULT_IMPROVED_SOURCE_TITLE,
        widget=UnfoldAdminTextInputWidget, label="Title of the new source",
    )  # fmt: skip

    def __init__(self, *args: Any, sources: QuerySet, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["source"].queryset = sources


class BoundedCountPaginator(Paginator):
    """Counts at most ``INBOX_COUNT_LIMIT`` + 1 rows: an organization's whole inbox (or a frequent word)
    is not counted on every page, only enough to know there are more than the limit; ``bounded`` says so.
    Pages up to the limit are numbered as usual; filters or a search narrow a bigger set."""

    @cached_property
    def count(self) -> int:
        limit = settings.INBOX_COUNT_LIMIT
        found = self.object_list.order_by().values("pk")[: limit + 1].count()
        self.bounded = found > limit
        return min(found, limit)

    bounded = False


class InboxChangeList(ChangeList):
    """The inbox's changelist: ``result_count_bounded`` when the count stopped at the limit."""

    def get_results(self, request: HttpRequest) -> None:
        super().get_results(request)
        self.result_count_bounded = self.paginator.bounded
        self.result_count_limit = settings.INBOX_COUNT_LIMIT


@functools.cache
def _badge(text: str, kind: str) -> str:
    # Three fixed labels: rendered once per process, not for every row of every page.
    return render_to_string("unfold/helpers/label.html", {"text": text, "type": kind})


@admin.register(Conversation)
class ConversationAdmin(TenantScopedAdmin):
    """The inbox: conversations titled by their first question, with who asked, where, and badges for what
    went wrong; a transcript reads as a chat. Every member reads; owners and admins may delete one (e.g.
    on request)."""

    list_display = ("title", "visitor", "bot", "channel", "message_count", "badges", "last_message_at")
    list_display_links = ("title",)
    list_filter = (
        "bot", "channel", ("last_message_at", RangeDateFilter), HandoffFilter, FeedbackFilter, UnansweredFilter,
        FailureFilter, LanguageFilter,
    )  # fmt: skip
    list_filter_submit = True  # the date range is applied with a button
    list_per_page = 50
    paginator = BoundedCountPaginator
    show_full_result_count = False  # a second count of the organization's conversations on every page
    search_fields = ("messages__text",)  # the search itself is conversations_search (full-text, indexed)
    search_help_text = 'Words from the messages ("exact phrase", -without), or a visitor id.'
    readonly_fields = ("bot", "channel", "visitor_id", "visitor_attributes", "created_at", "last_message_at")
    fields = readonly_fields
    change_form_template = "chatbots/admin/conversation_transcript.html"
    change_list_template = "chatbots/admin/conversation_inbox.html"

    def get_queryset(self, request: HttpRequest) -> QuerySet[Conversation]:
        return conversations_for_inbox(super().get_queryset(request))

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Conversation], search_term: str
    ) -> tuple[QuerySet[Conversation], bool]:
        organization = None if self.is_operator(request) else active_organization(request)
        organization_id = organization.pk if organization is not None else None
        return conversations_search(queryset, text=search_term, organization_id=organization_id), False

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return InboxChangeList

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict | None = None
    ) -> HttpResponse:
        conversation = self.get_object(request, object_id)  # tenant-scoped: another organization's is a 404
        context = {
            **(extra_context or {}),
            "transcript": conversation_transcript(conversation=conversation),
            "visitor_label": conversation.visitor_label,
            "visitor_attributes": sorted((conversation.visitor_attributes or {}).items()),
            "may_improve": self.may_improve(request),
            "handoff": handoff_state(conversation=conversation, check_availability=False),
            "handoff_operator_id": conversation.handoff_operator_id,
            "may_answer": active_membership(request) is not None,  # operators answer as members
            "reply_email": conversation_email(conversation),
            "reply_form": EmailReplyForm(
                initial={"subject": f"Re: your chat with {conversation.bot.display_title}"}
            ),
            "email_replies": conversation.email_replies.select_related("sent_by").order_by("created_at"),
            "leads": conversation.leads.order_by("created_at"),
        }
        return super().change_view(request, object_id, form_url, extra_context=context)

    # --- improve an answer -------------------------------------------------------------------------
    def may_improve(self, request: HttpRequest) -> bool:
        """Owners and admins (and operators) turn corrections into FAQ pairs; members only read."""
        return self.is_operator(request) or self._can_write(request)

    def tenant_object_urls(self, obj: Conversation) -> list[str]:
        """The pages of one conversation beyond the change page (the tenant isolation walk opens them)."""
        ids = obj.messages.order_by("pk").values_list("pk", flat=True)[:3]
        return [
            reverse("admin:chatbots_conversation_email_reply", args=[obj.pk]),
            *(reverse("admin:chatbots_conversation_improve", args=[obj.pk, pk]) for pk in ids),
        ]

    def email_reply_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """POST from a transcript: e-mail the identified visitor (every member may answer visitors)."""
        conversation = self.get_object(request, object_id)  # tenant-scoped: another organization's is a 404
        if conversation is None:
            raise Http404
        back = reverse("admin:chatbots_conversation_change", args=[conversation.pk])
        form = EmailReplyForm(request.POST or None)
        if request.method != "POST":
            return reply_page(
                request, self, original=conversation, reply_to=conversation_email(conversation),
                replies=conversation.email_replies.order_by("created_at"), reply_url=request.path,
            )  # fmt: skip
        if not form.is_valid():
            self.message_user(request, "Write the reply first.", messages.ERROR)
        else:
            try:
                reply = conversation_reply_send(
                    conversation=conversation, user=request.user, **form.cleaned_data
                )
            except ReplyNotSent as exc:
                self.message_user(request, exc.message, messages.ERROR)
            else:
                self.message_user(request, f"Your reply was sent to {reply.to_email}.", messages.SUCCESS)
        return redirect(f"{back}#email-replies")

    def get_urls(self) -> list[Any]:
        return [
            path(
                "export/", self.admin_site.admin_view(self.export_view), name="chatbots_conversation_export"
            ),
            path(
                "handoff-notifications/",
                self.admin_site.admin_view(self.handoff_notifications_view),
                name="chatbots_conversation_handoff_notifications",
            ),
            path(
                "<path:object_id>/email-reply/",
                self.admin_site.admin_view(self.email_reply_view),
                name="chatbots_conversation_email_reply",
            ),
            path(
                "<path:object_id>/improve/<int:message_id>/",
                self.admin_site.admin_view(self.improve_view),
                name="chatbots_conversation_improve",
            ),
            *super().get_urls(),
        ]

    def improve_view(self, request: HttpRequest, object_id: str, message_id: int) -> HttpResponse:
        conversation = self.get_object(request, object_id)  # tenant-scoped: another organization's is a 404
        try:
            message = conversation_answer_get(conversation=conversation, message_id=message_id)
        except MessageNotFound:
            raise Http404("No such answer in this conversation.") from None
        if not self.may_improve(request):
            raise PermissionDenied
        form = ImproveAnswerForm(
            request.POST or None,
            sources=bot_faq_sources(bot=conversation.bot),
            initial={"question": answer_question(message=message), "answer": message.text},
        )
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            try:
                source = answer_improve(
                    message=message, question=data["question"], answer=data["answer"],
                    source=data["source"], new_source_title=data["new_source_title"],
                )  # fmt: skip
            except ApplicationError as exc:
                form.add_error(None, exc.message)
            else:
                self.message_user(
                    request, f"Saved in “{source.title}”: this question gets the new answer once the source "
                    "is ready.", messages.SUCCESS,
                )  # fmt: skip
                change = reverse("admin:chatbots_conversation_change", args=[conversation.pk])
                return redirect(f"{change}#message-{message.pk}")
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Improve this answer",
            "original": conversation,
            "form": form,
            "answer_message": message,
        }
        return TemplateResponse(request, "chatbots/admin/improve_answer.html", context)

    def handoff_notifications_view(self, request: HttpRequest) -> HttpResponse:
        """The signed-in member's own choice of handoff notifications (e-mail, browser)."""
        membership = active_membership(request)
        if membership is None:
            raise PermissionDenied
        initial = {"email": membership.notify_handoff_email, "browser": membership.notify_handoff_browser}
        form = HandoffNotificationsForm(request.POST or None, initial=initial)
        if request.method == "POST" and form.is_valid():
            membership_set_handoff_notifications(
                membership=membership, email=form.cleaned_data["email"], browser=form.cleaned_data["browser"]
            )
            self.message_user(request, "Your handoff notifications are saved.", messages.SUCCESS)
            return redirect(reverse("admin:chatbots_conversation_handoff_notifications"))
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": f"Handoff notifications in {membership.organization}",
            "form": form,
        }
        return TemplateResponse(request, "chatbots/admin/handoff_notifications.html", context)

    # --- export ------------------------------------------------------------------------------------
    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None) -> HttpResponse:
        context = {
            **(extra_context or {}),
            "may_export": self.may_improve(request),
            "export_formats": ExportFormat.choices,
        }
        return super().changelist_view(request, extra_context=context)

    def export_view(self, request: HttpRequest) -> HttpResponse:
        """POST from the inbox: export the conversations its current filters (the query string) show."""
        if request.method != "POST":
            return redirect(reverse("admin:chatbots_conversation_changelist"))
        organization = active_organization(request)
        if not self.may_improve(request) or organization is None:
            raise PermissionDenied
        export = conversation_export_request(
            organization=organization, user=request.user, filters=inbox_filters_from_admin(request.GET),
            format=request.POST.get("format", ExportFormat.CSV),
        )  # fmt: skip
        self.message_user(
            request, f"{export} is being prepared; it appears here with a download link when ready."
        )
        return redirect(reverse("admin:chatbots_conversationexport_changelist"))

    def delete_model(self, request: HttpRequest, obj: Conversation) -> None:
        conversation_delete(conversation=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Conversation]) -> None:
        for conversation in queryset:
            conversation_delete(conversation=conversation)

    @display(description="Question", ordering="first_question")
    def title(self, obj: Conversation) -> str:
        return obj.first_question or "(no question)"

    @display(description="Visitor")
    def visitor(self, obj: Conversation) -> str:
        return obj.visitor_label

    @display(description="Badges")
    def badges(self, obj: Conversation) -> str:
        shown = [
            (obj.handoff_status == HandoffStatus.WAITING, "danger", "Waiting for a person"),
            (obj.handoff_status == HandoffStatus.TAKEN, "info", "With a person"),
            (
                obj.handoff_status not in HANDOFF_ACTIVE and obj.handoff_requested_at is not None,
                "info",
                "Handed over",
            ),
            (obj.has_thumbs_down, "danger", "Thumbs down"),
            (obj.has_unanswered, "warning", "Unanswered"),
            (obj.has_failure, "danger", "Failed / incomplete"),
        ]
        return format_html_join(" ", "{}", ((_badge(text, kind),) for on, kind, text in shown if on))

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    # --- the rows of a page, built in one pass (templatetags/inbox_admin.py says why) ----------------
    def inbox_rows(self, cl: ChangeList, headers: list[dict[str, Any]]) -> list[SafeString]:
        """Each conversation of the page as the cells of its table row, with the markup and classes of
        unfold's ``items_for_result`` (columns: ``list_display``; model fields shown as the admin shows
        them, the others through this admin's display methods)."""
        rows = list(cl.result_list)
        if not rows:
            return []
        empty = self.get_empty_value_display()
        cell_classes = " ".join(ROW_CLASSES)
        checkbox = ""
        if "action_checkbox" in cl.list_display:
            # The widget rendered once, then given each row's id (rendering it per row cost ~1 ms each).
            checkbox = str(self.action_checkbox(rows[0]))
        first_url = add_preserved_filters(
            {"preserved_filters": cl.preserved_filters, "opts": cl.opts}, cl.url_for_result(rows[0])
        )
        first_path, question_mark, query = first_url.partition("?")
        first_query = question_mark + query
        columns = []
        for index, name in enumerate(cl.list_display):
            method = getattr(self, name, None) if name != "action_checkbox" else None
            field = None if method is not None or name == "action_checkbox" else self.opts.get_field(name)
            nowrap = isinstance(field, models.DateField | models.TimeField | models.ForeignKey)
            columns.append((name, method, field, nowrap, headers[index]["text"]))
        out = []
        for obj in rows:
            cells = []
            for name, method, field, nowrap, label in columns:
                if name == "action_checkbox":
                    # the widget's own (escaped) markup, with this row's id (a UUID) in place of the first's
                    html = mark_safe(checkbox.replace(str(rows[0].pk), str(obj.pk)))  # noqa: S308
                    td = '<td class="{}" data-label="{}">{}</td>'
                    cells.append(format_html(td, " ".join(CHECKBOX_CLASSES), _("Select record"), html))
                    continue
                if method is not None:
                    shown = display_for_value(method(obj), empty)
                else:
                    shown = display_for_field(getattr(obj, field.name), field, empty)
                classes = f"field-{name} {cell_classes}" + (" nowrap" if nowrap else "")
                if name in cl.list_display_links:
                    # one reverse() for the page: the path with this row's id, the preserved filters as they are
                    url = first_path.replace(str(rows[0].pk), str(obj.pk)) + first_query
                    link = format_html('<a href="{}" class="{}" >{}</a>', url, " ".join(LINK_CLASSES), shown)
                    cells.append(format_html('<th class="{}" data-label="{}">{}</th>', classes, label, link))
                else:
                    cells.append(format_html('<td class="{}" data-label="{}">{}</td>', classes, label, shown))
            out.append(mark_safe("".join(cells)))  # noqa: S308 - every cell is built by format_html
        return out


@admin.register(ConversationExport)
class ConversationExportAdmin(TenantScopedAdmin):
    """Exports started from the inbox: progress while they are written, then a download link until they
    expire. Read-only: they are made by the export job and removed by the purge job."""

    read_only = True
    list_display = ("__str__", "status_badge", "progress_label", "conversation_count", "message_count",
                    "expires_at", "download")  # fmt: skip
    list_filter = ("status", "format")
    fields = ("format", "filters", "status", "progress", "conversation_count", "message_count", "error",
              "created_at", "finished_at", "expires_at")  # fmt: skip
    readonly_fields = fields

    # Made by the export job and removed by the purge job, for operators too (a deleted row would leave
    # its file behind).
    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def tenant_object_urls(self, obj: ConversationExport) -> list[str]:
        return [reverse("admin:chatbots_conversationexport_download", args=[obj.pk])]

    def get_urls(self) -> list[Any]:
        return [
            path(
                "<path:object_id>/download/",
                self.admin_site.admin_view(self.download_view),
                name="chatbots_conversationexport_download",
            ),
            *super().get_urls(),
        ]

    def download_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        export = self.get_object(request, object_id)  # tenant-scoped: another organization's is a 404
        try:
            export_available(export=export)
        except ExportUnavailable as exc:
            return HttpResponse(exc.message, status=exc.http_status, content_type="text/plain")
        return export_file_response(export)

    @display(
        description="Status",
        label={"queued": "info", "running": "warning", "ready": "success", "failed": "danger"},
    )
    def status_badge(self, obj: ConversationExport) -> str:
        return obj.status

    @display(description="Progress")
    def progress_label(self, obj: ConversationExport) -> str:
        return f"{obj.progress}%"

    @display(description="Download")
    def download(self, obj: ConversationExport) -> str:
        try:
            export_available(export=obj)
        except ExportUnavailable:
            return "expired" if obj.status == ExportStatus.READY else "–"
        url = reverse("admin:chatbots_conversationexport_download", args=[obj.pk])
        return format_html('<a class="underline" href="{}">Download</a>', url)


@admin.register(ReviewQueueEntry)
class ReviewQueueAdmin(TenantScopedAdmin):
    """The review queue: the bots' answers that need attention (thumbs down, unanswered, weak sources,
    provider failures), grouped by similar question, the most frequent first; each links to its
    transcript and to "improve this answer", and a group is marked resolved at once. Read by
    ``chatbots.question_groups.review_queue``; resolving goes through ``review_resolve``."""

    change_list_template = "chatbots/admin/review_queue.html"
    list_display = ("__str__",)
    SAMPLES = 5  # questions shown per group (the count says how many there are)

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def may_resolve(self, request: HttpRequest) -> bool:
        """Owners and admins work the queue (as they improve answers); members read it."""
        return self._can_write(request) and active_organization(request) is not None

    def get_urls(self) -> list[Any]:
        return [
            path("resolve/", self.admin_site.admin_view(self.resolve_view), name="chatbots_reviewqueueentry_resolve"),
            *super().get_urls(),
        ]  # fmt: skip

    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None) -> HttpResponse:
        answers = self.get_queryset(request)  # tenant-scoped
        bots = Bot.objects.filter(pk__in=answers.values("conversation__bot_id").distinct()).order_by("name")
        bot_id = request.GET.get("bot", "")
        if bot_id.isdigit():
            answers = answers.filter(conversation__bot_id=int(bot_id))
        resolved = request.GET.get("status") == "resolved"
        groups = review_queue(answers, resolved=resolved)
        context = {
            **self.admin_site.each_context(request),
            **(extra_context or {}),
            "opts": self.opts,
            "title": "Review queue",
            "groups": [(group, group.items[: self.SAMPLES]) for group in groups],
            "answer_count": sum(group.count for group in groups),
            "resolved": resolved,
            "bots": bots,
            "bot_id": int(bot_id) if bot_id.isdigit() else None,
            "may_resolve": self.may_resolve(request),
            "may_improve": self._can_write(request) or self.is_operator(request),
        }
        return TemplateResponse(request, self.change_list_template, context)

    def resolve_view(self, request: HttpRequest) -> HttpResponse:
        """POST from the queue: mark a group's answers resolved (or open again with ``reopen``)."""
        back = reverse("admin:chatbots_reviewqueueentry_changelist")
        if request.method != "POST":
            return redirect(back)
        if not self.may_resolve(request):
            raise PermissionDenied
        ids = [int(pk) for pk in request.POST.getlist("answer") if pk.isdigit()][:5000]
        reopen = request.POST.get("reopen") == "1"
        changed = review_resolve(
            organization_id=active_organization(request).pk, message_ids=ids, resolved=not reopen
        )
        done = "opened again" if reopen else "marked resolved"
        self.message_user(request, f"{changed} answer{'s' if changed != 1 else ''} {done}.", messages.SUCCESS)
        return redirect(f"{back}?status=resolved" if request.POST.get("from") == "resolved" else back)


# --- API keys, with the bots each may use (accounts knows no bots: its admin is extended here) ----------
class ApiKeyBotsForm(ApiKeyForm):
    bots = forms.ModelMultipleChoiceField(
        queryset=Bot.objects.none(), required=False,
        help_text="Leave empty to allow every bot of the organization.",
    )  # fmt: skip

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        bots = Bot.objects.all()
        request = self.request
        if request is not None and not request.user.is_superuser:
            organization = active_organization(request)
            bots = bots.filter(organization=organization) if organization else bots.none()
        elif self.instance.organization_id:
            bots = bots.filter(organization_id=self.instance.organization_id)
        self.fields["bots"].queryset = bots
        if self.instance.pk:
            self.fields["bots"].initial = bots.filter(
                pk__in=api_key_bot_ids(api_keys=[self.instance])[self.instance.pk] or []
            )

    def clean_bots(self) -> list[Bot]:
        chosen = list(self.cleaned_data.get("bots") or [])
        organization_id = self.instance.organization_id or getattr(
            self.cleaned_data.get("organization"), "pk", None
        )
        if organization_id and any(bot.organization_id != organization_id for bot in chosen):
            raise ValidationError("Choose bots of this organization.")
        return chosen


admin.site.unregister(ApiKey)


@admin.register(ApiKey)
class ApiKeyWithBotsAdmin(ApiKeyAdmin):
    form = ApiKeyBotsForm

    def get_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        fields = [f for f in super().get_fields(request, obj) if f != "bots"]
        fields.insert(fields.index("expires_at") if "expires_at" in fields else len(fields), "bots")
        return fields

    def save_model(self, request: HttpRequest, obj: ApiKey, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)  # the admin's view runs in one transaction
        # Only a change of the choice: a key limited to bots that were all deleted shows none chosen and
        # must not become a key for every bot by being saved.
        if not change or "bots" in form.changed_data:
            api_key_set_bots(api_key=obj, bots=form.cleaned_data.get("bots"))


# --- knowledge sources, with the bots that answer from them (knowledge knows no bots) -------------------
class SourceBotsForm(SourceAdminForm):
    bots = forms.ModelMultipleChoiceField(
        queryset=Bot.objects.none(), required=False, label="Used by bots",
        widget=forms.CheckboxSelectMultiple,
        help_text="The bots that answer from this source. Untick a bot to detach it.",
    )  # fmt: skip
    request: HttpRequest | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        bots = Bot.objects.order_by("name")
        request = self.request
        if request is not None and not request.user.is_superuser:
            organization = active_organization(request)
            bots = bots.filter(organization=organization) if organization else bots.none()
        elif self.instance.organization_id:
            bots = bots.filter(organization_id=self.instance.organization_id)
        self.fields["bots"].queryset = bots
        if self.instance.pk:
            self.fields["bots"].initial = list(bots.filter(sources=self.instance))


admin.site.unregister(Source)


@admin.register(Source)
class SourceWithBotsAdmin(SourceAdmin):
    """The source page also says which bots use the source, and attaches or detaches them
    (``source_set_bots``); the list shows them too."""

    form = SourceBotsForm
    list_display = [*SourceAdmin.list_display[:3], "used_by", *SourceAdmin.list_display[3:]]

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any):
        form_class = super().get_form(request, obj, change, **kwargs)
        form_class.request = request
        return form_class

    def get_queryset(self, request: HttpRequest) -> QuerySet[Source]:
        return super().get_queryset(request).prefetch_related("bots")

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> list[Any]:
        fieldsets = list(super().get_fieldsets(request, obj))
        # Who may change the source chooses its bots; a member reads their names.
        writable = self.has_change_permission(request, obj) if obj else self.has_add_permission(request)
        return [*fieldsets[:1], ("Bots", {"fields": ["bots" if writable else "used_by"]}), *fieldsets[1:]]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str] | tuple:
        return [*super().get_readonly_fields(request, obj), "used_by"]

    @display(description="Used by")
    def used_by(self, obj: Source) -> str:
        names = sorted(bot.name for bot in obj.bots.all())
        return ", ".join(names) if names else "No bot yet"

    def save_related(self, request: HttpRequest, form: SourceBotsForm, formsets: Any, change: bool) -> None:
        super().save_related(request, form, formsets, change)  # writes the source (and its FAQ pairs)
        if not change or "bots" in form.changed_data:
            source = Source.objects.get(pk=form.instance.pk)
            source_set_bots(source=source, bots=form.cleaned_data.get("bots") or [])


from chatbots import privacy_admin  # noqa: E402, F401  (data subject requests, registered on import)
