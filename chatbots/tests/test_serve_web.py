"""``manage.py serve_web``: several Daphne processes on one address, connections spread over them, a dead one
restarted, SIGTERM leaving nothing behind."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import websockets
from django.conf import settings
from django.db import connection

from chatbots.testing import database_url
from chatbots.tests.factories import make_chat_bot
from config.embedded import free_port

BASE_DIR = Path(__file__).resolve().parents[2]


def _wait_for(predicate, timeout: float) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.3)
    return False


def _daphne_children(proc: subprocess.Popen) -> list[psutil.Process]:
    """The running Daphne processes, each the graceful ``config.serve`` (a killed one stays a zombie until
    ``serve_web`` reaps it)."""
    running = []
    for child in psutil.Process(proc.pid).children():
        try:
            if child.status() != psutil.STATUS_ZOMBIE and "config.serve" in " ".join(child.cmdline()):
                running.append(child)
        except psutil.Error:
            continue  # exited meanwhile
    return running


def _all_serve(port: int) -> bool:
    """Twenty health checks in a row answered: new connections are spread over every process's socket, and
    the sockets listen before the processes have loaded Django."""
    return all(_serves(port) for _ in range(20))


def _serves(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=3) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            return sock.recv(64).startswith(b"HTTP/1.1 200")
    except OSError:
        return False


async def _ready_frames(url: str, count: int) -> tuple[list[str], list[websockets.ClientConnection]]:
    """``count`` chat sockets open at once (each says ready), kept open while the caller looks."""

    async def one() -> tuple[websockets.ClientConnection, str]:
        ws = await websockets.connect(url, open_timeout=30)
        return ws, json.loads(await asyncio.wait_for(ws.recv(), 30))["type"]

    opened = await asyncio.gather(*(one() for _ in range(count)))
    return [kind for _, kind in opened], [ws for ws, _ in opened]


@pytest.mark.slow_process
@pytest.mark.timeout(900)  # three Django process starts: seconds each, minutes on a loaded machine
def test_serve_web_spreads_sockets_over_its_processes_restarts_a_dead_one_and_stops_cleanly(
    transactional_db, llm_server, tmp_path: Path
) -> None:
    bot = make_chat_bot(llm_server)
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url(connection.settings_dict),
        "REDIS_URL": settings.REDIS_URL,
    }
    output = tmp_path / "serve_web.log"  # a file, not a pipe: nobody reads the access log while it runs
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "serve_web", "--port", str(port), "--processes", "2"],
        cwd=BASE_DIR, env=env, stdout=output.open("w"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        assert _wait_for(lambda: len(_daphne_children(proc)) == 2 and _all_serve(port), 300)
        daphnes = _daphne_children(proc)

        async def open_sockets() -> dict[int, int]:
            kinds, sockets = await _ready_frames(f"ws://127.0.0.1:{port}/ws/chat/{bot.public_id}/", 24)
            assert kinds == ["ready"] * 24
            held = {
                daphne.pid: sum(
                    1
                    for conn in daphne.net_connections(kind="tcp")
                    if conn.status == psutil.CONN_ESTABLISHED and conn.laddr.port == port
                )
                for daphne in daphnes
            }
            for ws in sockets:
                await ws.close()
            return held

        held = asyncio.run(open_sockets())
        assert sum(held.values()) == 24 and all(count > 0 for count in held.values()), held

        daphnes[0].kill()
        assert _wait_for(lambda: {p.pid for p in _daphne_children(proc)} - {d.pid for d in daphnes}, 60)
        assert _wait_for(lambda: len(_daphne_children(proc)) == 2 and _all_serve(port), 300)
        survivors = _daphne_children(proc)

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        _gone, alive = psutil.wait_procs(survivors, timeout=10)
        assert not alive
        assert "restarting" in output.read_text()
    finally:
        if proc.poll() is None:
            leftovers = psutil.Process(proc.pid).children(recursive=True)
            proc.kill()
            for child in leftovers:
                if child.is_running():
                    child.kill()
