"""Test support for the whole project, loaded by the root conftest.py.

``isolate_run`` gives each pytest run its own Redis server, its own test database and its own media
folder before Django reads its settings, so two runs on one machine (two checkouts, or one checkout
twice) never see or flush each other's data. Then the shared fixtures: a clean Redis for every test, a
real Celery worker and the test database's teardown.
"""

from __future__ import annotations

import atexit
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import redis
from django.conf import settings

# Set it to run the suite on an existing Redis instead of a private one: every test FLUSHES its database.
TEST_REDIS_URL_ENV = "PARLOR_TEST_REDIS_URL"
# Per-run test databases are named test_parlor_run<pid>; runs that died leave theirs, dropped next time.
RUN_DATABASE_PREFIX = "test_parlor_run"


def isolate_run() -> None:
    """Point this process (and every subprocess a test starts) at services of this run's own.

    Must run before Django's settings are loaded. A REDIS_URL from the environment is deliberately
    ignored: it is a development or production Redis, and the tests flush theirs all the time.
    """
    if "config.settings" in sys.modules:
        raise pytest.UsageError(
            "Django's settings were loaded before conftest.py could give the test run its own Redis "
            "and database: unset DJANGO_SETTINGS_MODULE (and do not pass --ds); conftest.py sets it."
        )
    from config.embedded import private_redis_url

    run_dir = Path(tempfile.mkdtemp(prefix="parlor-test-"))
    atexit.register(shutil.rmtree, run_dir, ignore_errors=True)  # runs after the Redis server stopped
    redis_url = os.environ.get(TEST_REDIS_URL_ENV) or private_redis_url(run_dir / "redis")
    os.environ.update(
        {
            "REDIS_URL": redis_url,
            "CELERY_BROKER_URL": redis_url,
            "CELERY_RESULT_BACKEND": redis_url,
            "CHANNEL_LAYER_PREFIX": "parlor-test",
            "MEDIA_ROOT": str(run_dir / "media"),
        }
    )
    os.environ.setdefault("PARLOR_TEST_DB_NAME", f"{RUN_DATABASE_PREFIX}{os.getpid()}")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")


def pytest_report_header() -> list[str]:
    private = "" if os.environ.get(TEST_REDIS_URL_ENV) else " (this run's own)"
    return [f"redis: {settings.REDIS_URL}{private}; test database: {os.environ['PARLOR_TEST_DB_NAME']}"]


@pytest.fixture
def redis_client() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(settings.REDIS_URL)
    yield client
    client.close()


@pytest.fixture(autouse=True)
def _clean_redis(request: pytest.FixtureRequest) -> Iterator[None]:
    """Every test starts with an empty Redis database (rate limits, caches, channel layer)."""
    client = redis.Redis.from_url(settings.REDIS_URL)
    client.flushdb()
    client.close()
    from knowledge.embedders import forget_serving_model

    forget_serving_model()  # the embedding model is re-read from each test's database
    yield


class RestartableRedis:
    """A Redis server of one test's own, stopped and started again on the same port (outage tests), so the
    run's shared server is never disturbed."""

    def __init__(self, directory: Path) -> None:
        from config.embedded import free_port

        self.directory = directory
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        from config.embedded import redis_answers, redis_server_binary

        self.directory.mkdir(parents=True, exist_ok=True)
        command = [
            redis_server_binary(), "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "no", "--dir", str(self.directory),
        ]  # fmt: skip
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(200):
            if redis_answers(port=self.port):
                return
            time.sleep(0.05)
        raise RuntimeError(f"redis-server did not start on port {self.port}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


@pytest.fixture
def restartable_redis(tmp_path: Path) -> Iterator[RestartableRedis]:
    server = RestartableRedis(tmp_path / "redis")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def celery_worker(transactional_db: None) -> Iterator[object]:
    """A real Celery worker (thread, solo pool) consuming from the real Redis broker.

    It shares this process's settings, so it reads and writes the test database; tests that use it need
    committed data, hence ``transactional_db``.
    """
    from celery.contrib.testing.worker import start_worker

    from config.celery import app

    with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=30) as worker:
        yield worker


@pytest.fixture(scope="session")
def django_db_modify_db_settings(
    django_db_modify_db_settings_parallel_suffix: None, django_db_blocker
) -> None:
    """Before this run creates its test database: drop those of earlier runs that died (killed, or
    stopped by a timeout) on the embedded server. Their process ids no longer exist on this machine."""
    if os.environ.get("DATABASE_URL"):
        return  # a server others may share: their runs' process ids mean nothing here
    import psutil
    from django.db import connection

    pattern = re.compile(rf"^{RUN_DATABASE_PREFIX}(\d+)$")
    with django_db_blocker.unblock(), connection.cursor() as cursor:
        cursor.execute("SELECT datname FROM pg_database WHERE datname LIKE %s", [f"{RUN_DATABASE_PREFIX}%"])
        for (name,) in cursor.fetchall():
            match = pattern.match(name)
            if match and not psutil.pid_exists(int(match.group(1))):
                cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    connection.close()


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup: None, django_db_blocker) -> Iterator[None]:
    """pytest-django's test database, whose teardown would otherwise find it still in use: the chat's
    worker threads (retrieval, embedding) keep their connections for the life of the process."""
    yield
    from django.db import connection

    with django_db_blocker.unblock(), connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )


# --- SSRF cases every outbound client is tested against (config/outbound.py is the one guard) ----------
# (host in a URL, what it is)
REFUSED_HOSTS = [
    ("127.0.0.1", "loopback"),
    ("127.0.0.53", "loopback, not the first address"),
    ("localhost", "a name for loopback"),
    ("[::1]", "IPv6 loopback"),
    ("[::ffff:127.0.0.1]", "IPv4-mapped loopback"),
    ("[::127.0.0.1]", "IPv4-compatible loopback"),
    ("0.0.0.0", "unspecified (reaches this host)"),  # noqa: S104 (a URL host, not a bind address)
    ("[::]", "IPv6 unspecified"),
    ("10.0.0.1", "private 10/8"),
    ("172.16.0.1", "private 172.16/12"),
    ("192.168.1.1", "private 192.168/16"),
    ("100.64.0.1", "carrier-grade NAT 100.64/10"),
    ("169.254.169.254", "cloud metadata"),
    ("[::ffff:169.254.169.254]", "IPv4-mapped metadata"),
    ("[64:ff9b::a9fe:a9fe]", "NAT64 form of the metadata address"),
    ("[64:ff9b::7f00:1]", "NAT64 form of loopback"),
    ("[64:ff9b:1::a9fe:a9fe]", "local-use NAT64 prefix"),
    ("[2002:a9fe:a9fe::1]", "6to4 embedding the metadata address"),
    ("[2002:808:808::1]", "6to4, even embedding a public address"),
    ("[2001:0:4136:e378:8000:63bf:3fff:fdd2]", "Teredo"),
    ("[fd00:ec2::254]", "AWS IPv6 metadata"),
    ("100.100.100.200", "Alibaba Cloud metadata"),
    ("[fc00::1]", "unique local (ULA)"),
    ("[fe80::1]", "IPv6 link-local"),
    ("[fec0::1]", "IPv6 site-local"),
    ("224.0.0.1", "IPv4 multicast"),
    ("[ff02::1]", "IPv6 multicast"),
    ("240.0.0.1", "reserved"),
    ("255.255.255.255", "broadcast"),
    ("192.0.2.1", "documentation (TEST-NET-1)"),
    ("[2001:db8::1]", "IPv6 documentation"),
    ("198.18.0.1", "benchmarking"),
    ("[100::1]", "IPv6 discard-only"),
    ("nonexistent.invalid", "a name that does not resolve"),
]
REFUSED_HOST_IDS = [what for _, what in REFUSED_HOSTS]
# The reasons the guard gives: every refusal above says one of these.
REFUSAL_WORDS = ("private, local or cloud-internal", "cannot be resolved")

# One loopback address the tests let the guard treat as public (settings.OUTBOUND_ALLOWED_NETWORKS): a
# stand-in for an allowed host on the internet, while 127.0.0.1 stays the internal service.
PUBLIC_STAND_IN = "127.0.0.2"


@dataclass
class Redirector:
    """Answers every GET and POST with a redirect to ``target`` + the requested path."""

    target: str
    status: int = 307
    hits: list[str] = field(default_factory=list)
    hosts: list[str] = field(default_factory=list)  # the Host header of each request
    base: str = ""


@contextmanager
def serve_redirects(redirector: Redirector, host: str = PUBLIC_STAND_IN) -> Iterator[Redirector]:
    class Handler(BaseHTTPRequestHandler):
        def _redirect(self) -> None:
            redirector.hits.append(self.path)
            redirector.hosts.append(self.headers.get("Host", ""))
            length = int(self.headers.get("content-length") or 0)
            if length:
                self.rfile.read(length)
            self.send_response(redirector.status)
            self.send_header("Location", redirector.target + self.path)
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_GET = do_POST = _redirect

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer((host, 0), Handler)
    redirector.base = f"http://{host}:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield redirector
    finally:
        server.shutdown()
        server.server_close()


# --- Object storage: a real S3-compatible server on loopback (moto's server mode, from PyPI) -------------
S3_TEST_KEYS = {"access_key": "parlor-test-access", "secret_key": "parlor-test-secret-key-0123456789"}


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    """moto's S3 server in a process of its own, on a free loopback port; yields its endpoint URL."""
    import subprocess
    import time

    from config.embedded import free_port

    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    import httpx

    while True:
        try:
            httpx.get(endpoint + "/moto-api/", timeout=1)
            break
        except httpx.TransportError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError("moto's S3 server did not start") from None
            time.sleep(0.2)
    try:
        yield endpoint
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@dataclass
class ObjectStore:
    """The bucket a test's files go to, read back with boto3 as an operator would."""

    endpoint: str
    bucket: str
    client: object

    def keys(self, prefix: str = "") -> list[str]:
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
        return sorted(item["Key"] for page in pages for item in page.get("Contents", []))

    def read(self, key: str) -> bytes:
        return self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()

    def storage_settings(self) -> dict:
        return {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {
                "bucket_name": self.bucket, "endpoint_url": self.endpoint, "region_name": "us-east-1",
                "addressing_style": "path", "signature_version": "s3v4", "default_acl": "private",
                "querystring_auth": True, "querystring_expire": 300, "file_overwrite": False, **S3_TEST_KEYS,
            },
        }  # fmt: skip


@pytest.fixture
def object_storage(s3_server: str, settings) -> ObjectStore:  # type: ignore[no-untyped-def]
    """Point Django's default storage at a fresh private bucket of the loopback S3 server."""
    import uuid

    import boto3

    client = boto3.client(
        "s3", endpoint_url=s3_server, region_name="us-east-1",
        aws_access_key_id=S3_TEST_KEYS["access_key"], aws_secret_access_key=S3_TEST_KEYS["secret_key"],
    )  # fmt: skip
    store = ObjectStore(endpoint=s3_server, bucket=f"parlor-test-{uuid.uuid4().hex[:12]}", client=client)
    client.create_bucket(Bucket=store.bucket)
    settings.STORAGES = {**settings.STORAGES, "default": store.storage_settings()}
    return store
