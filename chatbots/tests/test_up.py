from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import quote

import httpx
import psutil
import pytest
import websockets
from django.conf import settings
from django.db import connection

from accounts.models import Membership, Organization, Role, User
from chatbots.demo import demo_seed
from chatbots.models import Bot
from config.embedded import free_port
from knowledge.models import Source, SourceStatus

BASE_DIR = Path(__file__).resolve().parents[2]


@pytest.mark.django_db
def test_demo_seed_is_idempotent(settings, tmp_path: Path) -> None:
    settings.DATA_DIR = tmp_path
    first = demo_seed()
    second = demo_seed()
    assert first.created and not second.created
    assert (first.organization.pk, first.user.pk, first.bot.pk) == (
        second.organization.pk,
        second.user.pk,
        second.bot.pk,
    )
    assert first.password == second.password
    assert Organization.objects.count() == 1 and Bot.objects.count() == 1 and User.objects.count() == 2
    assert Membership.objects.get(user=first.user).role == Role.OWNER
    assert second.user.check_password(second.password)


@pytest.mark.django_db
def test_demo_user_is_a_customer_and_the_operator_a_separate_account(settings, tmp_path: Path) -> None:
    settings.DATA_DIR = tmp_path
    seed = demo_seed()
    assert not seed.user.is_superuser and not seed.user.is_staff
    assert seed.operator.is_superuser and seed.operator.pk != seed.user.pk
    assert not Membership.objects.filter(user=seed.operator).exists()
    assert seed.operator.check_password(seed.operator_password_file.read_text().strip())


@pytest.mark.django_db
def test_demo_seed_demotes_a_demo_user_created_as_superuser_by_older_installs(
    settings, tmp_path: Path
) -> None:
    settings.DATA_DIR = tmp_path
    User.objects.create_superuser("admin@parlor.localhost", "old-password")
    seed = demo_seed()
    seed.user.refresh_from_db()
    assert not seed.user.is_superuser and not seed.user.is_staff
    assert seed.user.check_password(seed.password)


def _test_database_url() -> str:
    db = connection.settings_dict
    host = quote(db["HOST"] or "localhost", safe="")
    port = f":{db['PORT']}" if db["PORT"] else ""
    return f"postgres://{db['USER']}:{quote(db['PASSWORD'] or '')}@{host}{port}/{db['NAME']}"


async def _ask(url: str, question: str) -> dict:
    async with websockets.connect(url) as ws:
        assert json.loads(await ws.recv())["type"] == "ready"
        await ws.send(json.dumps({"type": "message", "text": question}))
        answer: dict = {"text": "", "sources": []}
        while True:
            frame = json.loads(await asyncio.wait_for(ws.recv(), 60))
            if frame["type"] == "delta":
                answer["text"] += frame["text"]
            elif frame["type"] == "sources":
                answer["sources"] = frame["sources"]
            elif frame["type"] in ("done", "error"):
                answer[frame["type"]] = frame
                return answer


def _wait_for(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.3)
    return False


@pytest.mark.slow_process
def test_up_serves_parlor_and_ctrl_c_leaves_no_process_behind(transactional_db, tmp_path: Path) -> None:
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": _test_database_url(),
        "REDIS_URL": settings.REDIS_URL,
        "PARLOR_DATA_DIR": str(tmp_path),
    }
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "up", "--port", str(port)],
        cwd=BASE_DIR, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    output: list[str] = []
    reader = threading.Thread(target=lambda: output.extend(iter(proc.stdout.readline, "")), daemon=True)
    reader.start()
    base = f"http://127.0.0.1:{port}"
    try:

        def ready() -> bool:
            try:
                return httpx.get(f"{base}/readyz", timeout=3).status_code == 200
            except httpx.HTTPError:
                return False

        # "Ready" is printed only once the web server answers: at that moment it already does.
        assert _wait_for(lambda: "Parlor is ready at" in "".join(output), 120), "".join(output)[-3000:]
        assert httpx.get(f"{base}/healthz", timeout=3).status_code == 200
        assert _wait_for(ready, 90), "".join(output)[-3000:]
        assert httpx.get(f"{base}/healthz").json() == {"status": "ok"}
        text = "".join(output)
        steps = [
            "==> Applying database migrations",
            "==> Creating the demo organization",
            "==> Starting the web",
        ]
        positions = [text.index(step) for step in [*steps, "Parlor is ready at"]]
        assert positions == sorted(positions)
        email = re.search(r"E-mail:\s+(\S+)", text).group(1)
        password = re.search(r"Password:\s+(\S+)", text).group(1)

        with httpx.Client(base_url=base, follow_redirects=False) as client:
            login_page = client.get("/accounts/login/")
            assert login_page.status_code == 200
            token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', login_page.text).group(1)
            response = client.post(
                "/accounts/login/?next=/admin/",
                data={"login": email, "password": password, "csrfmiddlewaretoken": token},
                headers={"Referer": f"{base}/accounts/login/"},
            )
            assert response.status_code == 302, response.text[:500]
            dashboard = client.get("/admin/")
            assert dashboard.status_code == 200 and "Demo Company" in dashboard.text
            # A customer's admin: no operator models (users, organizations of others) in the sidebar.
            assert "/admin/accounts/user/" not in dashboard.text

        # With no model configured anywhere, the demo bot answers offline from the knowledge the worker
        # ingested, and says that no language model is connected.
        public_id = re.search(r"public id (bot_[A-Za-z0-9_-]+)", text).group(1)
        source = Source.objects.get(title="About Parlor")
        assert _wait_for(lambda: Source.objects.get(pk=source.pk).status == SourceStatus.READY, 120)
        answer = asyncio.run(
            _ask(f"ws://127.0.0.1:{port}/ws/chat/{public_id}/", "How do I put the bot on my website?")
        )
        assert "script tag" in answer["text"] and answer["done"]["offline"] is True
        assert any(s["title"] == "About Parlor" for s in answer["sources"])

        children = psutil.Process(proc.pid).children(recursive=True)
        assert len(children) >= 3  # daphne, celery worker (+ its pool), beat
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=45) == 0
        _gone, alive = psutil.wait_procs(children, timeout=10)
        assert not alive, f"left behind: {[p.cmdline() for p in alive]}"
        assert "Parlor stopped." in "".join(output)
    finally:
        # Even when an assertion failed: leave no web, worker or beat process behind.
        if proc.poll() is None:
            leftovers = psutil.Process(proc.pid).children(recursive=True)
            proc.kill()
            for child in leftovers:
                if child.is_running():
                    child.kill()
