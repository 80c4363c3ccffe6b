"""How every list of the REST API pages: ``?page=`` and ``?page_size=`` (at most 200) with
``{"count", "next", "previous", "results"}``; messages page by cursor (``?cursor=``), since a conversation
grows while it is read."""

from __future__ import annotations

from rest_framework import pagination

MAX_PAGE_SIZE = 200


class PageNumberPagination(pagination.PageNumberPagination):
    page_size_query_param = "page_size"
    max_page_size = MAX_PAGE_SIZE


class CursorPagination(pagination.CursorPagination):
    """Oldest first and stable while new rows arrive (a page number would shift under a live chat)."""

    ordering = ("created_at", "id")
    page_size_query_param = "page_size"
    max_page_size = MAX_PAGE_SIZE
