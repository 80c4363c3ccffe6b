"""`manage.py up` keeps its children running (config/supervisor.py): a child that dies is restarted after
a pause, the others are left alone, and stopping ends every child."""

from __future__ import annotations

import os
import signal
import sys
import time

from config.supervisor import Supervisor

SLEEPER = [sys.executable, "-c", "import time; time.sleep(600)"]


def _until(predicate, timeout: float = 30.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout  # a deadline for a loaded machine, not a timing assertion
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_a_child_that_dies_is_restarted_and_the_others_keep_running() -> None:
    lines: list[str] = []
    supervisor = Supervisor(
        {"web": SLEEPER, "worker": SLEEPER},
        first_backoff_seconds=0.1,
        stop_grace_seconds=10,
        log=lines.append,
    )
    supervisor.start()
    try:
        web, worker = supervisor.children["web"], supervisor.children["worker"]
        first_web_pid, worker_pid = web.process.pid, worker.process.pid
        os.kill(first_web_pid, signal.SIGKILL)

        def web_restarted() -> bool:
            supervisor.check()
            return web.process.pid != first_web_pid and web.process.poll() is None

        assert _until(web_restarted), lines
        assert web.restarts == 1 and web.exit_codes == [-signal.SIGKILL]
        assert worker.process.pid == worker_pid and worker.process.poll() is None and worker.restarts == 0
        assert any(line.startswith("web exited with code -9") for line in lines), lines

        # A child that keeps dying waits longer each time (a crash loop does not spin).
        os.kill(web.process.pid, signal.SIGKILL)
        assert _until(lambda: (supervisor.check(), web.restart_at is not None)[1])
        assert web.quick_failures == 2 and "restarting in 0.2s" in lines[-1]
    finally:
        supervisor.stop()
    assert all(child.process.poll() is not None for child in supervisor.children.values())
