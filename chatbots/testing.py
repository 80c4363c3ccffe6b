"""Test support for the chat: fixtures for the local model server, the pipeline's teardown check, and a
live Parlor for the widget's browser tests (loaded as a pytest plugin by the root conftest.py).

The fake model is a real OpenAI-compatible HTTP server on loopback (chatbots.llm.testserver); the real
`openai` SDK talks to it. The live Parlor is a real `daphne config.asgi:application` process, so the
browser talks to exactly what production runs (HTTP + WebSocket + Redis channel layer). It reads the test
database, so tests that use it create their data with ``transactional_db`` (committed rows). Host pages
stand for customers' websites on other loopback origins; headless Chromium is driven through Playwright.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote, urlencode
from urllib.request import urlopen

import pytest
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.db import connection

from chatbots.llm.testserver import FakeLLMServer
from chatbots.pipeline.blocking import wait_until_idle
from chatbots.tests.factories import SERVER_KEY
from config.asgi import application
from config.embedded import free_port


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    """A visitor who leaves mid-answer leaves the pipeline saving in a pool thread; let it finish before
    any fixture is torn down (a database flush racing it would deadlock)."""
    assert wait_until_idle(), "chat pipeline work still running after the test"


# --- The model: a local OpenAI-compatible server --------------------------------------------------
@pytest.fixture(scope="session")
def llm_server() -> Iterator[FakeLLMServer]:
    with FakeLLMServer() as server:
        yield server


@pytest.fixture
def fake_llm() -> Iterator[FakeLLMServer]:
    """A real HTTP server on loopback in a background thread; the real openai SDK talks to it."""
    with FakeLLMServer(api_key=SERVER_KEY) as server:
        yield server


@pytest.fixture
def fast_llm_settings(settings):  # type: ignore[no-untyped-def]
    settings.LLM_RETRY_BACKOFF = 0.01
    settings.LLM_RETRY_MAX_WAIT = 5.0
    settings.LLM_MAX_RETRIES = 2
    settings.LLM_CONNECT_TIMEOUT = 2.0
    settings.LLM_FIRST_TOKEN_TIMEOUT = 5.0
    settings.LLM_TOTAL_TIMEOUT = 10.0
    settings.LLM_DEFAULT_API_KEY = ""
    settings.LLM_DEFAULT_BASE_URL = ""
    return settings


# --- The chat socket, in process -----------------------------------------------------------------
VISITOR = "visitor-0123456789"


async def connect(
    bot,
    *,
    visitor: str = VISITOR,
    conversation: str | None = None,
    origin: str | None = None,
    language: str | None = None,
    accept_language: str | None = None,
    identity: dict[str, str] | None = None,
):
    """A chat socket as the widget opens it (``language``: the ``lang`` the widget sends; ``accept_language``:
    the handshake's header; ``identity``: ``user_id`` and ``user_hash`` of a signed identity)."""
    path = f"/ws/chat/{bot.public_id}/?visitor={visitor}"
    if conversation:
        path += f"&conversation={conversation}"
    if language:
        path += f"&lang={language}"
    if identity:
        path += "&" + urlencode(identity)
    headers = [(b"host", b"testserver"), *([(b"origin", origin.encode())] if origin else [])]
    if accept_language:
        headers.append((b"accept-language", accept_language.encode()))
    communicator = WebsocketCommunicator(application, path, headers=headers)
    connected, _ = await communicator.connect()
    assert connected
    return communicator


async def collect_answer(communicator: WebsocketCommunicator, timeout: float = 20) -> dict:
    """Frames until `done` (or an error that ends the attempt): deltas joined, sources, done frame."""
    deltas, sources, errors = [], [], []
    while True:
        frame = await communicator.receive_json_from(timeout=timeout)
        if frame["type"] == "delta":
            deltas.append(frame["text"])
        elif frame["type"] == "sources":
            sources = frame["sources"]
        elif frame["type"] == "error":
            errors.append(frame)
            if frame["code"] != "llm_unavailable":
                return {"text": "".join(deltas), "sources": sources, "errors": errors, "done": None}
        elif frame["type"] == "done":
            return {"text": "".join(deltas), "sources": sources, "errors": errors, "done": frame}


# --- A live Parlor, customers' websites and headless Chromium --------------------------------------
ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = os.environ.get("PARLOR_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
# Small enough that a test reaches it in a few messages; each test has a fresh visitor, so others never do.
VISITOR_RATE_LIMIT = "3/h"  # a fixed window: an hour, so a test never straddles a window edge


def database_url(db: dict) -> str:
    """A DATABASE_URL for the test database this process uses (host may be a socket directory)."""
    user = quote(db.get("USER") or "", safe="")
    password = quote(db.get("PASSWORD") or "", safe="")
    auth = f"{user}:{password}@" if password else (f"{user}@" if user else "")
    host = quote(db.get("HOST") or "", safe="")
    port = f":{db['PORT']}" if db.get("PORT") else ""
    return f"postgres://{auth}{host}{port}/{db['NAME']}"


def _wait_for(url: str, proc: subprocess.Popen, log: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"daphne exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urlopen(url, timeout=2) as response:  # noqa: S310 - our own http:// URL
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"daphne did not answer {url} in {timeout}s:\n{log.read_text()[-3000:]}")


@dataclass
class LiveParlor:
    url: str  # http://127.0.0.1:<port>
    extra_env: dict[str, str] = field(default_factory=dict)


# Daphne started so that it gets SIGTERM when pytest dies (killed on a timeout, Ctrl-C): no orphaned server
# keeps a port and the test database. prctl runs in the fresh child interpreter, not in a forked pytest.
_DAPHNE_BOOT = (
    "import ctypes, runpy, signal, sys; ctypes.CDLL('libc.so.6').prctl(1, signal.SIGTERM); "
    "sys.argv = ['daphne', *sys.argv[1:]]; runpy.run_module('config.serve', run_name='__main__')"
)


def _daphne_command(port: int) -> list[str]:
    boot = ["-c", _DAPHNE_BOOT] if sys.platform.startswith("linux") else ["-m", "config.serve"]
    return [sys.executable, *boot, "-b", "127.0.0.1", "-p", str(port), "config.asgi:application"]


def start_daphne(
    extra_env: dict[str, str] | None = None, *, port: int | None = None
) -> tuple[subprocess.Popen, str, Path]:
    port = port or free_port()
    url = f"http://127.0.0.1:{port}"
    ARTIFACTS.mkdir(exist_ok=True)
    log = ARTIFACTS / f"daphne-{port}.log"
    log.unlink(missing_ok=True)
    env = {
        **{k: v for k, v in os.environ.items() if k != "DJANGO_ALLOW_ASYNC_UNSAFE"},
        "DATABASE_URL": database_url(connection.settings_dict),
        "REDIS_URL": settings.REDIS_URL,
        "CHANNEL_LAYER_PREFIX": os.environ.get("CHANNEL_LAYER_PREFIX", "parlor-test"),
        "PARLOR_TEST_DB_NAME": "",
        "DEBUG": "true",  # WhiteNoise serves static files from the finders, as in development
        "SITE_URL": url,
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "CHAT_RATE_LIMIT_VISITOR": VISITOR_RATE_LIMIT,
        "LOG_LEVEL": "WARNING",
        "WEB_SHUTDOWN_GRACE": "5",  # stop() waits for answers still in flight this long at most
        **(extra_env or {}),
    }
    with log.open("a") as out:
        proc = subprocess.Popen(
            _daphne_command(port),
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_for(f"{url}/healthz", proc, log)
    except Exception:
        proc.kill()
        raise
    return proc, url, log


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


class HostPages:
    """A customer's website on its own origin: serves whatever HTML a test registers under a path."""

    def __init__(self, host: str) -> None:
        pages: dict[str, str] = {}
        self.pages = pages

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = pages.get(self.path.split("?")[0])
                if body is None:
                    self.send_error(404)
                    return
                data = body.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.origin = f"http://{host}:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def page(self, path: str, html: str) -> str:
        self.pages[path] = html
        return self.origin + path

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def host_page_html(parlor_url: str, public_id: str, *, title: str = "Acme Outdoor", body: str = "") -> str:
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>body{{font-family:Georgia,serif;margin:0;background:#f6f1e7;color:#2b2b2b}}
header{{background:#2f4f3a;color:#fff;padding:24px 48px}} main{{padding:32px 48px;max-width:720px}}
button{{all:unset}} iframe{{display:none}} *{{box-sizing:content-box!important}}</style></head>
<body><header><h1>{title}</h1><p>Tents, boots and good advice since 1987.</p></header>
<main><h2>Welcome</h2><p>Our shop is open Monday to Saturday. Ask our assistant anything about orders,
shipping and returns.</p>{body}</main>
<script src="{parlor_url}/widget.js" data-bot="{public_id}" defer></script>
</body></html>"""


@pytest.fixture(scope="module")
def live_parlor(django_db_setup: None, django_db_blocker: object) -> Iterator[LiveParlor]:
    proc, url, _log = start_daphne()
    try:
        yield LiveParlor(url=url)
    finally:
        stop(proc)


@pytest.fixture(scope="module")
def allowed_site() -> Iterator[HostPages]:
    site = HostPages("localhost")  # another origin (and site) than Parlor's 127.0.0.1
    yield site
    site.close()


@pytest.fixture(scope="module")
def other_site() -> Iterator[HostPages]:
    site = HostPages("127.0.0.1")  # same host as Parlor, other port: a different origin, never allowed
    yield site
    site.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    playwright_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM}")
    # Playwright's sync API keeps an event loop running in this thread, so Django would refuse the test's
    # own (synchronous, ordinary) ORM calls; they are safe here, nothing else runs on that loop.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with playwright_api.sync_playwright() as pw:
            chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            yield chromium
            chromium.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def new_page(browser: object) -> Iterator[Callable[..., object]]:
    """Open pages in fresh browser contexts (a fresh visitor each); failures in page JS fail the test."""
    contexts = []
    errors: list[str] = []

    def make(**context_options: object) -> object:
        options = {"viewport": {"width": 1280, "height": 800}, "locale": "en-US", **context_options}
        context = browser.new_context(**options)
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(15000)
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.on("dialog", lambda dialog: (errors.append(f"dialog: {dialog.message}"), dialog.dismiss()))
        page.errors = errors
        return page

    yield make
    for context in contexts:
        context.close()
    assert not errors, errors


@dataclass
class RunningParlor:
    """``manage.py up`` as a newcomer starts it (web, worker and beat), on this test run's database."""

    proc: subprocess.Popen
    url: str
    output: list[str]

    def text(self) -> str:
        return "".join(self.output)

    def wait_for_output(self, needle: str, timeout: float = 180.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if needle in self.text():
                return self.text()
            if self.proc.poll() is not None:
                break
            time.sleep(0.2)
        raise AssertionError(f"{needle!r} never appeared:\n{self.text()[-3000:]}")

    def stop(self) -> list[str]:
        """Ctrl-C, as a person would; returns the command lines of processes that were left behind."""
        import psutil

        children = psutil.Process(self.proc.pid).children(recursive=True) if self.proc.poll() is None else []
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=45)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        _gone, alive = psutil.wait_procs(children, timeout=10)
        left = [" ".join(p.cmdline()) for p in alive if p.is_running()]
        for leftover in alive:
            leftover.kill()
        return left


def start_up(data_dir: Path) -> RunningParlor:
    """Start ``manage.py up`` on a free port with its output collected (the credentials it prints)."""
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if k != "DJANGO_ALLOW_ASYNC_UNSAFE"},
        "DATABASE_URL": database_url(connection.settings_dict),
        "REDIS_URL": settings.REDIS_URL,
        "PARLOR_DATA_DIR": str(data_dir),
        "PARLOR_TEST_DB_NAME": "",
    }
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "up", "--port", str(port), "--no-beat", "--concurrency", "1"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    output: list[str] = []
    threading.Thread(target=lambda: output.extend(iter(proc.stdout.readline, "")), daemon=True).start()
    return RunningParlor(proc=proc, url=f"http://localhost:{port}", output=output)


def admin_tab(page: object, name: str) -> object:
    """One of a change form's tabs ("Widget"): unfold draws them as links without an address."""
    slug = name.lower().replace(" ", "-")
    return page.locator(f"a[x-on\\:click=\"activeFieldsetTab = '{slug}'\"]")


def screenshot(page: object, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    page.screenshot(path=str(path))
    return path


# --- A Celery worker in its own process (to kill it like a crashed machine) -------------------------------
_WORKER_BOOT = (
    "import ctypes, signal, sys; ctypes.CDLL('libc.so.6').prctl(1, signal.SIGKILL); "
    "from celery.__main__ import main; sys.argv = ['celery', *sys.argv[1:]]; main()"
)


def start_celery_worker(extra_env: dict[str, str] | None = None, *, name: str = "worker") -> subprocess.Popen:
    """A real ``celery worker`` process on this run's broker and test database (solo pool: one task at a
    time, in the process itself, so killing the process kills the task mid-way). It dies with pytest."""
    ARTIFACTS.mkdir(exist_ok=True)
    log = ARTIFACTS / f"celery-{name}-{os.getpid()}.log"
    env = {
        **{k: v for k, v in os.environ.items() if k != "DJANGO_ALLOW_ASYNC_UNSAFE"},
        "DATABASE_URL": database_url(connection.settings_dict),
        "REDIS_URL": settings.REDIS_URL,
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        "CELERY_RESULT_BACKEND": settings.CELERY_RESULT_BACKEND,
        "MEDIA_ROOT": str(settings.MEDIA_ROOT),
        "PARLOR_TEST_DB_NAME": "",
        "LOG_LEVEL": "WARNING",
        "WEB_SHUTDOWN_GRACE": "5",  # stop() waits for answers still in flight this long at most
        **(extra_env or {}),
    }
    command = [sys.executable, "-c", _WORKER_BOOT, "-A", "config", "worker", "-P", "solo", "-c", "1",
               "--without-gossip", "--without-mingle", "--without-heartbeat", "-n", f"{name}-{os.getpid()}@%h",
               "-l", "WARNING"]  # fmt: skip
    with log.open("w") as out:
        return subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
