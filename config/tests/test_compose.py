"""docker-compose.yml cannot run here (no Docker engine), so its contract with the app is checked by reading."""

from __future__ import annotations

from pathlib import Path

import yaml

BASE_DIR = Path(__file__).resolve().parents[2]


def _compose() -> dict:
    return yaml.safe_load((BASE_DIR / "docker-compose.yml").read_text())


def test_compose_defines_the_production_services() -> None:
    services = _compose()["services"]
    assert {"db", "redis", "web", "worker", "beat", "migrate"} <= set(services)
    assert "pgvector" in services["db"]["image"]
    for name in ("db", "redis", "web", "worker"):
        assert "healthcheck" in services[name], f"{name} has no health check"
    assert services["db"]["volumes"] and services["redis"]["volumes"]


def test_app_services_run_the_right_commands_with_required_env() -> None:
    services = _compose()["services"]
    # One Daphne process per core of the container (WEB_CONCURRENCY) on the port the image exposes.
    assert services["web"]["command"] == [
        "python", "manage.py", "serve_web", "--host", "0.0.0.0", "--port", "8000",  # noqa: S104
    ]  # fmt: skip
    # Compose waits for the web processes' graceful shutdown (WEB_SHUTDOWN_GRACE, 20 s by default) and the
    # saves after it before it kills the container (its own default is 10 s).
    assert int(services["web"]["stop_grace_period"].split("s")[0]) >= 50
    assert services["worker"]["command"][:4] == ["celery", "-A", "config", "worker"]
    assert services["beat"]["command"][:4] == ["celery", "-A", "config", "beat"]
    assert services["migrate"]["command"] == ["python", "manage.py", "migrate", "--noinput"]
    for name in ("web", "worker", "beat", "migrate"):
        env = services[name]["environment"]
        assert env["DEBUG"] == "false"
        assert env["DATABASE_URL"].startswith("postgres://") and "@db:5432/" in env["DATABASE_URL"]
        assert env["REDIS_URL"] == "redis://redis:6379/0"
        assert {"SECRET_KEY", "ALLOWED_HOSTS", "FIELD_ENCRYPTION_KEYS"} <= set(env)
        assert services[name]["build"] == "."
    for name in ("web", "worker", "beat"):
        assert services[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"


def test_dockerfile_serves_the_asgi_app_on_the_port_compose_uses() -> None:
    dockerfile = (BASE_DIR / "Dockerfile").read_text()
    assert "uv sync --frozen --no-dev" in dockerfile
    assert "collectstatic" in dockerfile
    assert '"config.asgi:application"' in dockerfile
    assert _compose()["services"]["web"]["ports"] == ["${PORT:-8000}:8000"]


def test_an_optional_private_s3_service_runs_under_its_own_profile() -> None:
    services = _compose()["services"]
    for name in ("minio", "minio-bucket"):
        assert services[name]["profiles"] == ["s3"]  # `docker compose up` alone does not start it
    assert "ports" not in services["minio"]  # reachable on the compose network only
    assert "mc anonymous set none" in services["minio-bucket"]["command"][0]  # the bucket stays private
    assert "objects" in _compose()["volumes"]
