# Parlor application image: the same image runs web (Daphne), worker and beat (see docker-compose.yml).
FROM python:3.11-slim-bookworm AS base

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    UV_PROJECT_ENVIRONMENT=/opt/venv \
    UV_COMPILE_BYTECODE=1 \
    PATH="/opt/venv/bin:$PATH"

RUN apt-get update \
    && apt-get install -y --no-install-recommends libmagic1 curl \
    && rm -rf /var/lib/apt/lists/* \
    && pip install --no-cache-dir "uv==0.13.9" \
    && useradd --create-home --uid 1000 parlor

WORKDIR /app
COPY pyproject.toml uv.lock ./
RUN uv sync --frozen --no-dev --no-install-project

COPY . .
# collectstatic needs settings that load without a real database or secret; use throwaway build values.
# The same step derives the default embedder's int8 model file (.parlor/models), so containers start ready.
RUN export DEBUG=false \
    SECRET_KEY=build-only-collectstatic-key-0123456789abcdefghijklmnopqrstuvwxyzABCDEFG \
    ALLOWED_HOSTS=build DATABASE_URL=postgres://build@localhost/build REDIS_URL=redis://localhost:6379/0 \
    && python manage.py collectstatic --noinput \
    && python manage.py shell -c "from knowledge.embedders import get_embedder; get_embedder()" \
    && chown -R parlor:parlor /app

USER parlor
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --retries=5 CMD curl -fsS http://127.0.0.1:8000/healthz || exit 1
CMD ["python", "-m", "config.serve", "-b", "0.0.0.0", "-p", "8000", "config.asgi:application"]
