"""The admin home's "top questions" and "top unanswered questions" panels: what visitors asked most in the
last 30 days, grouped by meaning (``chatbots.question_groups``), a section of its own in
``ADMIN_DASHBOARD_SECTIONS`` beside the analytics charts."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from django.urls import reverse
from django.utils import timezone

from chatbots.models import Message
from chatbots.question_groups import QuestionGroup, top_questions, top_unanswered_questions

if TYPE_CHECKING:
    from django.http import HttpRequest

    from accounts.models import Organization

TOP_QUESTIONS_DAYS = 30
TOP_QUESTIONS_SHOWN = 8


def _rows(groups: list[QuestionGroup]) -> list[dict[str, Any]]:
    shown = groups[:TOP_QUESTIONS_SHOWN]
    most = max((group.count for group in shown), default=1)
    return [
        {"question": group.question, "count": group.count, "share": round(100 * group.count / most)}
        for group in shown
    ]


def top_questions_section(
    *, request: HttpRequest, organization: Organization | None
) -> dict[str, Any] | None:
    """Both panels for the active organization (nothing for an operator without one: questions of many
    organizations do not group into anything useful)."""
    if organization is None:
        return None
    since = timezone.now() - timedelta(days=TOP_QUESTIONS_DAYS)
    messages = Message.objects.filter(organization=organization)
    return {
        "template": "analytics/admin/top_questions_section.html",
        "days": TOP_QUESTIONS_DAYS,
        "top": _rows(top_questions(messages, since=since)),
        "unanswered": _rows(top_unanswered_questions(messages, since=since)),
        "inbox_url": reverse("admin:chatbots_conversation_changelist"),
        "queue_url": reverse("admin:chatbots_reviewqueueentry_changelist"),
    }
