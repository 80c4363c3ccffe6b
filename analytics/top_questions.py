"""The admin home's "top questions" and "top unanswered questions" panels: what visitors asked most in the
last 30 days, grouped by meaning (``chatbots.question_groups``), a section of its own in
``ADMIN_DASHBOARD_SECTIONS`` beside the analytics charts."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.urls import reverse

from chatbots.question_groups import QUESTION_PANELS_DAYS, question_panels

if TYPE_CHECKING:
    from django.http import HttpRequest

    from accounts.models import Organization

TOP_QUESTIONS_SHOWN = 8


def _rows(pairs: list[tuple[str, int]]) -> list[dict[str, Any]]:
    most = max((count for _, count in pairs), default=1)
    return [
        {"question": question, "count": count, "share": round(100 * count / most)}
        for question, count in pairs
    ]


def top_questions_section(
    *, request: HttpRequest, organization: Organization | None
) -> dict[str, Any] | None:
    """Both panels for the active organization (nothing for an operator without one: questions of many
    organizations do not group into anything useful). Grouped at most once a minute per organization
    (``chatbots.question_groups.question_panels``): the page load reads two cache entries."""
    if organization is None:
        return None
    panels = question_panels(organization_id=organization.pk, shown=TOP_QUESTIONS_SHOWN)
    return {
        "template": "analytics/admin/top_questions_section.html",
        "days": QUESTION_PANELS_DAYS,
        "top": _rows(panels.top),
        "unanswered": _rows(panels.unanswered),
        "inbox_url": reverse("admin:chatbots_conversation_changelist"),
        "queue_url": reverse("admin:chatbots_reviewqueueentry_changelist"),
    }
