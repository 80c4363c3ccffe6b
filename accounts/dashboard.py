"""The admin landing page: the active organization at a glance (unfold ``DASHBOARD_CALLBACK``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.contrib import admin
from django.urls import NoReverseMatch, reverse
from django.utils.module_loading import import_string

from accounts.admin_base import TenantScopedAdmin
from accounts.models import ApiKey, Invitation, Organization
from accounts.selectors import active_membership, organizations_for_user

if TYPE_CHECKING:
    from django.http import HttpRequest

# Apps whose objects are counted on the dashboard, in this order (accounts has its own card).
DASHBOARD_APPS = ("chatbots", "knowledge", "analytics")
# Counts stop here ("10,000+"): an organization's hundreds of thousands of messages are not counted on
# every load of the home page (bench/analytics_scale.py).
DASHBOARD_COUNT_LIMIT = 10_000


@dataclass(frozen=True)
class Stat:
    label: str
    count: int
    url: str | None
    add_url: str | None
    more: bool = False  # there are more than ``count`` (the count stopped at DASHBOARD_COUNT_LIMIT)


def _url(name: str) -> str | None:
    try:
        return reverse(name)
    except NoReverseMatch:
        return None


def _model_stats(request: HttpRequest) -> list[Stat]:
    stats = []
    for app_label in DASHBOARD_APPS:
        for model, model_admin in admin.site._registry.items():
            if model._meta.app_label != app_label or not isinstance(model_admin, TenantScopedAdmin):
                continue
            if not model_admin.has_view_permission(request):
                continue
            opts = model._meta
            found = (
                model_admin.get_queryset(request).order_by().values("pk")[: DASHBOARD_COUNT_LIMIT + 1].count()
            )
            stats.append(
                Stat(
                    label=str(opts.verbose_name_plural).capitalize(),
                    count=min(found, DASHBOARD_COUNT_LIMIT),
                    more=found > DASHBOARD_COUNT_LIMIT,
                    url=_url(f"admin:{opts.app_label}_{opts.model_name}_changelist"),
                    add_url=_url(f"admin:{opts.app_label}_{opts.model_name}_add")
                    if model_admin.has_add_permission(request)
                    else None,
                )
            )
    return stats


def _getting_started(request: HttpRequest, stats: list[Stat]) -> list[dict[str, Any]]:
    """First steps for a new organization, each marked done once it has happened (from the page's
    ``stats``: counting every model again doubled the page's queries on a big organization)."""
    counts = {stat.label.lower(): stat for stat in stats}
    steps = []
    for label, text in (
        ("bots", "Create your first bot"),
        ("sources", "Add knowledge: upload files or a website"),
    ):
        stat = counts.get(label)
        if stat is not None:
            steps.append({"text": text, "done": stat.count > 0, "url": stat.add_url or stat.url})
    organization = active_membership(request).organization
    steps.append(
        {
            "text": "Invite your team",
            "done": organization.memberships.count() > 1,
            "url": _url("admin:accounts_invitation_add"),
        }
    )
    steps.append(
        {
            "text": "Create an API key for your developers",
            "done": ApiKey.objects.filter(organization=organization).exists(),
            "url": _url("admin:accounts_apikey_add"),
        }
    )
    return steps


def _sections(request: HttpRequest, organization: Organization | None) -> list[dict[str, Any]]:
    """Sections that apps above accounts add to the dashboard, as config lists them in
    ``ADMIN_DASHBOARD_SECTIONS``: each a callable ``(*, request, organization)`` returning the context of
    its section (or None), whose ``template`` the dashboard includes (accounts imports none of those
    apps). ``organization`` is None for an operator without a membership."""
    sections = []
    for path in settings.ADMIN_DASHBOARD_SECTIONS:
        section = import_string(path)(request=request, organization=organization)
        if section is not None:
            sections.append(section)
    return sections


def dashboard_callback(request: HttpRequest, context: dict[str, Any]) -> dict[str, Any]:
    membership = active_membership(request)
    if membership is None:
        context.update({"parlor_operator": request.user.is_superuser, "sections": _sections(request, None)})
        return context
    organization: Organization = membership.organization
    stats = _model_stats(request)
    context.update(
        {
            "organization": organization,
            "membership": membership,
            "can_write": membership.role in ("owner", "admin"),
            "organizations": organizations_for_user(user=request.user),
            "stats": stats,
            "member_count": organization.memberships.count(),
            "pending_invitations": [
                i
                for i in Invitation.objects.filter(
                    organization=organization, accepted_at=None, revoked_at=None
                )
                if i.is_pending
            ],
            "api_key_count": ApiKey.objects.filter(organization=organization, revoked_at=None).count(),
            "getting_started": _getting_started(request, stats),
            "sections": _sections(request, organization),
            "links": {
                "members": _url("admin:accounts_membership_changelist"),
                "invite": _url("admin:accounts_invitation_add"),
                "api_keys": _url("admin:accounts_apikey_changelist"),
                "organization": reverse("admin:accounts_organization_change", args=[organization.pk]),
                "switch": reverse("accounts:organization_switch"),
                "security": _url("mfa_index"),
                "email": _url("account_email"),
                "password": _url("account_change_password"),
            },
        }
    )
    return context


def site_subheader(request: HttpRequest) -> str:
    membership = active_membership(request)
    if membership is None:
        return "Operator" if getattr(request.user, "is_superuser", False) else ""
    return f"{membership.organization.name} · {membership.get_role_display()}"


_APP_ICONS = {
    "accounts": "group",
    "chatbots": "smart_toy",
    "knowledge": "menu_book",
    "analytics": "monitoring",
}
_MODEL_ICONS = {
    "organization": "apartment",
    "membership": "badge",
    "invitation": "mail",
    "apikey": "key",
    "bot": "smart_toy",
    "reviewqueueentry": "rate_review",
    "user": "person",
}


def sidebar_navigation(request: HttpRequest) -> list[dict[str, Any]]:
    """Sidebar groups built from the registered admins the user may view, so new admins appear by themselves."""
    groups: list[dict[str, Any]] = [
        {
            "title": "Overview",
            "items": [{"title": "Dashboard", "icon": "dashboard", "link": reverse("admin:index")}],
        }
    ]
    order = {label: i for i, label in enumerate((*DASHBOARD_APPS, "accounts"))}
    app_list = sorted(
        admin.site.get_app_list(request), key=lambda app: order.get(app["app_label"], len(order))
    )
    for app in app_list:
        items = [
            {
                "title": model["name"],
                "icon": _MODEL_ICONS.get(
                    model["object_name"].lower(), _APP_ICONS.get(app["app_label"], "list")
                ),
                "link": model["admin_url"],
            }
            for model in app["models"]
            if model.get("admin_url")
        ]
        if items:
            groups.append({"title": app["name"], "collapsible": False, "items": items})
    return groups


def account_navigation(request: HttpRequest) -> list[dict[str, str]]:
    """Links in the admin's user menu to the allauth account pages."""
    links = [
        ("E-mail addresses", "account_email"),
        ("Change password", "account_change_password"),
        ("Two-factor authentication", "mfa_index"),
    ]
    return [{"title": title, "link": url} for title, name in links if (url := _url(name))]
