"""The inbox's per-conversation summary (services): title, message count, badges and search document.

``Conversation.first_question``, ``message_count``, ``has_thumbs_down``, ``has_unanswered``,
``has_failure`` and ``search_document`` repeat what the conversation's messages say, so that an inbox page
reads one row per conversation (and a filter or a frequent search word one partial or GIN index) instead of
subqueries over a million messages. This module is the one place that writes them:

- the chat services call ``summary_message_added`` when a message is stored (in the same UPDATE as the
  conversation's ``last_message_at``: no extra trip on the chat's critical path),
  ``summary_failure_added`` when a visitor's message is refused afterwards, and
  ``summary_feedback_changed`` when a rating is set or withdrawn;
- ``conversation_summaries_rebuild`` recomputes them from the messages (retention after it removed a kept
  conversation's old messages, ``seed_traffic`` after COPY, the migration that introduced them);
- ``conversation_summaries_forget`` blanks the title and the search document before erasure deletes a
  visitor's messages, so no copy of their words outlives them even if the job stops half-way.

The flags' rules are the selectors' (``unanswered_q``, ``PROBLEM_STATUSES``); a test compares every
column with a recomputation over the messages after each kind of write.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from django.db import connection
from django.utils import timezone

from chatbots.models import MESSAGE_SEARCH_CONFIG, Conversation, Feedback, MessageRole, MessageStatus
from chatbots.selectors import FALLBACK_PROVIDER, PROBLEM_STATUSES

TITLE_CHARS = Conversation._meta.get_field("first_question").max_length
# A tsvector holds at most 1 MB: past this size a conversation's document keeps its words but drops their
# positions (``strip``; a quoted phrase then matches its words anywhere in that conversation), so a very
# long conversation can never make storing a message fail.
DOCUMENT_STRIP_BYTES = 256 * 1024


def message_is_unanswered(*, role: str, status: str, provider: str, sources: list) -> bool:
    """The bot's fallback reply, or a complete answer without any source (``selectors.unanswered_q``)."""
    return (
        role == MessageRole.ASSISTANT
        and status == MessageStatus.COMPLETE
        and (provider == FALLBACK_PROVIDER or sources == [])
    )


def summary_message_added(
    *,
    conversation_id: uuid.UUID | str,
    role: str,
    text: str,
    status: str,
    provider: str = "",
    sources: list | None = None,
) -> None:
    """One message was stored in the conversation: its activity time, count, title (the first visitor
    message), badges and search document, in one UPDATE."""
    unanswered = message_is_unanswered(role=role, status=status, provider=provider, sources=sources or [])
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE chatbots_conversation SET last_message_at = %s, message_count = message_count + 1, "
            "first_question = CASE WHEN first_question = '' AND %s THEN left(%s, %s) ELSE first_question END, "
            "has_unanswered = has_unanswered OR %s, has_failure = has_failure OR %s, "
            "search_document = CASE WHEN pg_column_size(search_document) > %s THEN strip(search_document) "
            "ELSE coalesce(search_document, ''::tsvector) END || to_tsvector(%s::regconfig, %s) "
            "WHERE id = %s",
            [
                timezone.now(), role == MessageRole.USER, text, TITLE_CHARS, unanswered,
                status in PROBLEM_STATUSES, DOCUMENT_STRIP_BYTES, MESSAGE_SEARCH_CONFIG, text,
                str(conversation_id),
            ],
        )  # fmt: skip


def summary_failure_added(*, message_id: int) -> None:
    """A stored message became failed (a visitor's message refused after it was stored)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE chatbots_conversation SET has_failure = true WHERE id = "
            "(SELECT conversation_id FROM chatbots_message WHERE id = %s) AND NOT has_failure",
            [message_id],
        )


def summary_feedback_changed(*, conversation_id: uuid.UUID | str) -> None:
    """A rating was set, changed or withdrawn: whether any answer is rated down, from the messages."""
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE chatbots_conversation SET has_thumbs_down = EXISTS (SELECT 1 FROM chatbots_message m "
            "WHERE m.conversation_id = %s AND m.feedback = %s) WHERE id = %s",
            [str(conversation_id), Feedback.DOWN, str(conversation_id)],
        )


# Every column from the messages. ``{where}`` narrows the conversations; the aggregate reads each one's
# messages through ``message_conversation_time`` (conversation, created_at), oldest first.
_REBUILD_SQL = """
UPDATE chatbots_conversation c SET
    message_count = s.n,
    first_question = s.first_question,
    has_thumbs_down = s.thumbs_down,
    has_unanswered = s.unanswered,
    has_failure = s.failure,
    search_document = s.document
FROM (
    SELECT c2.id,
        coalesce(agg.n, 0) AS n,
        coalesce(left(agg.first_question, %(title_chars)s), '') AS first_question,
        coalesce(agg.thumbs_down, false) AS thumbs_down,
        coalesce(agg.unanswered, false) AS unanswered,
        coalesce(agg.failure, false) AS failure,
        agg.document
    FROM chatbots_conversation c2
    LEFT JOIN LATERAL (
        SELECT count(*) AS n,
            (array_agg(m.text ORDER BY m.created_at, m.id) FILTER (WHERE m.role = 'user' AND m.text <> ''))[1] AS first_question,
            bool_or(m.feedback = 'down') AS thumbs_down,
            bool_or(m.role = 'assistant' AND m.status = 'complete'
                    AND (m.provider = %(fallback)s OR m.sources = '[]'::jsonb)) AS unanswered,
            bool_or(m.status IN ('failed', 'incomplete')) AS failure,
            to_tsvector(%(config)s::regconfig, string_agg(m.text, ' ' ORDER BY m.created_at, m.id)) AS document
        FROM chatbots_message m WHERE m.conversation_id = c2.id
    ) agg ON true
    WHERE {where}
) s
WHERE c.id = s.id
"""


def conversation_summaries_rebuild(
    *, conversation_ids: Iterable[uuid.UUID | str] | None = None, organization_id: int | None = None
) -> int:
    """Recompute the summary of these conversations (or of an organization's, or of all) from their
    messages; returns how many were updated. Idempotent: safe to run over any conversations at any time."""
    params: dict[str, object] = {
        "title_chars": TITLE_CHARS, "fallback": FALLBACK_PROVIDER, "config": MESSAGE_SEARCH_CONFIG,
    }  # fmt: skip
    conditions = ["true"]
    if conversation_ids is not None:
        params["ids"] = [str(pk) for pk in conversation_ids]
        if not params["ids"]:
            return 0
        conditions.append("c2.id = ANY(%(ids)s::uuid[])")
    if organization_id is not None:
        params["organization_id"] = organization_id
        conditions.append("c2.organization_id = %(organization_id)s")
    with connection.cursor() as cursor:
        cursor.execute(_REBUILD_SQL.format(where=" AND ".join(conditions)), params)
        return cursor.rowcount


def conversation_summaries_forget(*, conversation_ids: Iterable[uuid.UUID | str]) -> int:
    """Blank the copies of message text (title and search document) of conversations about to be erased."""
    ids = [str(pk) for pk in conversation_ids]
    if not ids:
        return 0
    return Conversation.objects.filter(pk__in=ids).update(first_question="", search_document=None)
