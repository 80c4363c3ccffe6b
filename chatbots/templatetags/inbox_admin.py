"""The inbox's result list (``ConversationAdmin``): unfold's table, with the rows built in one pass.

Unfold builds every cell through ``items_for_result``, which recomputes all the column headers (sort links
included) for each row and renders each row's checkbox through the form widget templates: 50 rows × 9
columns took most of a page's time at scale (bench/analytics_scale.py, profiled). The rows here have the
same markup and classes, from ``ConversationAdmin.inbox_row_cells``; the headers are unfold's, once.
"""

from __future__ import annotations

from typing import Any

from django import template
from unfold.templatetags.unfold_list import result_headers

register = template.Library()


@register.inclusion_tag("chatbots/admin/inbox_results.html", takes_context=True)
def inbox_result_list(context: dict[str, Any], cl: Any) -> dict[str, Any]:
    headers = list(result_headers(cl))
    return {
        "cl": cl,
        "result_headers": headers,
        "num_sorted_fields": sum(1 for h in headers if h["sortable"] and h["sorted"]),
        "rows": cl.model_admin.inbox_rows(cl, headers),
        "request": context.get("request"),
    }
