"""Database connections of long-lived worker threads (the chat pipeline's pool, retrieval's second connection)."""

from __future__ import annotations

from django.db import connection


def replace_broken_connection() -> None:
    """Close this thread's connection if it broke, so the next query opens a fresh one.

    Pings the server only after a database error on the connection: a ping before every call would cost a
    round trip per chat message step."""
    if connection.connection is not None and connection.errors_occurred:
        if connection.is_usable():
            connection.errors_occurred = False
        else:
            connection.close()
