"""Prometheus metrics for the operators of a deployment (all organizations together): ``GET /metrics``.

Two kinds of figures: counters this process keeps (HTTP requests and their durations, by the middleware
below; scrape every web process), and gauges read when scraped — today's chat figures from the analytics
roll-up (fresh within a minute), the knowledge sources by ingestion status, the Celery queue lengths in
the broker, and how old the roll-up is (alert when beat stops). Protected: a bearer ``METRICS_TOKEN``,
or a signed-in staff user.
"""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import redis
from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings
from django.db.models import Count, Max
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from analytics import histograms
from analytics.exceptions import MetricsUnauthorized
from analytics.models import DailyStat
from analytics.selectors import COUNTS, figures_total
from config.errors import error_response
from knowledge.models import Source

logger = logging.getLogger(__name__)

REGISTRY = CollectorRegistry()
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)
GCCollector(registry=REGISTRY)

HTTP_REQUESTS = Counter(
    "parlor_http_requests", "HTTP requests answered.", ["method", "view", "status"], registry=REGISTRY
)
HTTP_DURATION = Histogram(
    "parlor_http_request_duration_seconds",
    "Time to the response (to its first byte for streamed answers).",
    ["method", "view"],
    registry=REGISTRY,
)
WEBSOCKET_CONNECTIONS = Counter(
    "parlor_websocket_connections",
    "WebSocket handshakes: accepted, or refused (host, origin, bot or visitor checks).",
    ["outcome"],
    registry=REGISTRY,
)
WEBSOCKET_OPEN = Gauge("parlor_websocket_open", "WebSocket connections open now.", registry=REGISTRY)
WEBSOCKET_FRAMES = Counter(
    "parlor_websocket_frames", "WebSocket frames received from and sent to clients.", ["direction"],
    registry=REGISTRY,
)  # fmt: skip
WEBSOCKET_CLOSES = Counter(
    "parlor_websocket_server_closes",
    "Accepted WebSocket connections the server closed, by close code (4xxx: the chat refused the socket).",
    ["code"],
    registry=REGISTRY,
)
WEBSOCKET_DURATION = Histogram(
    "parlor_websocket_connection_duration_seconds",
    "How long accepted WebSocket connections stayed open.",
    buckets=(1, 5, 15, 60, 300, 900, 3600, 4 * 3600),
    registry=REGISTRY,
)
ANSWER_KINDS = ("faq", "knowledge", "model", "fallback", "offline")


class DeploymentCollector(Collector):
    """Gauges read from the database and the broker at each scrape."""

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "parlor_metrics_source_up", "Whether a metric source answered.", labels=["source"]
        )
        for name, collect in (("chat", self._chat), ("knowledge", self._knowledge), ("celery", self._celery)):
            try:
                families = list(collect())  # all or nothing per source
            except Exception:  # a scrape must still answer: the operator sees which source failed
                logger.exception("metrics source %s failed", name)
                up.add_metric([name], 0)
                continue
            up.add_metric([name], 1)
            yield from families
        yield up

    def _chat(self) -> Iterator[Metric]:
        rows = list(DailyStat.objects.filter(day=timezone.now().date()))
        today = figures_total(rows=rows)
        counts = GaugeMetricFamily(
            "parlor_chat_today", "Today's chat figures (UTC day, every organization).", labels=["figure"]
        )
        for name in COUNTS:
            counts.add_metric([name], getattr(today, name))
        yield counts
        kinds = GaugeMetricFamily("parlor_chat_answers_today", "Today's answers by kind.", labels=["kind"])
        for kind in ANSWER_KINDS:
            kinds.add_metric([kind], getattr(today, f"answers_{kind}"))
        yield kinds
        for metric, values in (("latency", today.latency_histogram), ("first_token", today.ttft_histogram)):
            family = GaugeMetricFamily(
                f"parlor_chat_{metric}_today_seconds", f"Today's {metric.replace('_', ' ')} percentiles.",
                labels=["quantile"],
            )  # fmt: skip
            for q in (0.5, 0.95):
                value = histograms.percentile(values, q)
                if value is not None:
                    family.add_metric([str(q)], value / 1000)
            yield family
        newest = DailyStat.objects.aggregate(newest=Max("computed_at"))["newest"]
        age = GaugeMetricFamily(
            "parlor_analytics_rollup_age_seconds", "Seconds since the analytics roll-up last wrote a row."
        )
        if newest is not None:
            age.add_metric([], (timezone.now() - newest).total_seconds())
        yield age

    def _knowledge(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "parlor_knowledge_sources", "Knowledge sources by status.", labels=["status"]
        )
        for values in Source.objects.values("status").annotate(n=Count("pk")).order_by("status"):
            family.add_metric([values["status"]], values["n"])
        yield family

    def _celery(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "parlor_celery_queue_length", "Tasks waiting in a Celery queue.", labels=["queue"]
        )
        client = redis.Redis.from_url(settings.CELERY_BROKER_URL, socket_connect_timeout=2, socket_timeout=2)
        try:
            for queue in settings.METRICS_CELERY_QUEUES:
                family.add_metric([queue], client.llen(queue))
        finally:
            client.close()
        yield family


REGISTRY.register(DeploymentCollector())


def _authorized(request: HttpRequest) -> bool:
    token = settings.METRICS_TOKEN
    header = request.headers.get("Authorization", "")
    if token and header.startswith("Bearer "):
        return hmac.compare_digest(header.removeprefix("Bearer ").encode(), token.encode())
    user = getattr(request, "user", None)
    return bool(user is not None and user.is_authenticated and user.is_active and user.is_staff)


def metrics_view(request: HttpRequest) -> HttpResponse:
    if not _authorized(request):
        response = error_response(MetricsUnauthorized())
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return HttpResponse(generate_latest(REGISTRY), content_type=CONTENT_TYPE_LATEST)


class RequestMetricsMiddleware:
    """Counts every request Django answers (static files are answered earlier, by WhiteNoise) by method,
    view name (never the raw path: bounded labels) and status."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest):
        if self.is_async:
            return self._acall(request)
        started = time.perf_counter()
        response = self.get_response(request)
        self._record(request, response, started)
        return response

    async def _acall(self, request: HttpRequest):
        started = time.perf_counter()
        response = await self.get_response(request)
        self._record(request, response, started)
        return response

    @staticmethod
    def _record(request: HttpRequest, response: HttpResponse, started: float) -> None:
        match = getattr(request, "resolver_match", None)
        view = match.view_name if match is not None else "unmatched"
        method = (
            request.method
            if request.method in ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
            else "other"
        )
        HTTP_REQUESTS.labels(method, view, str(response.status_code)).inc()
        HTTP_DURATION.labels(method, view).observe(time.perf_counter() - started)


class WebSocketMetricsMiddleware:
    """ASGI middleware around the WebSocket router (config/asgi.py, outermost, so sockets refused by the
    edge checks count too): handshakes accepted or refused, connections open, frames each way and how long
    connections lasted. It sees only the ASGI messages, never their content."""

    def __init__(self, app: Callable[..., Awaitable[None]]) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Callable, send: Callable) -> None:
        if scope["type"] != "websocket":
            await self.app(scope, receive, send)
            return
        opened_at: float | None = None
        refused = False

        async def counting_receive() -> dict[str, Any]:
            message = await receive()
            if message["type"] == "websocket.receive":
                WEBSOCKET_FRAMES.labels("received").inc()
            return message

        async def counting_send(message: dict[str, Any]) -> None:
            nonlocal opened_at, refused
            kind = message["type"]
            if kind == "websocket.accept" and opened_at is None:
                opened_at = time.perf_counter()
                WEBSOCKET_CONNECTIONS.labels("accepted").inc()
                WEBSOCKET_OPEN.inc()
            elif kind == "websocket.send":
                WEBSOCKET_FRAMES.labels("sent").inc()
            elif kind == "websocket.close" and opened_at is not None:
                WEBSOCKET_CLOSES.labels(str(message.get("code") or 1000)).inc()
            elif kind == "websocket.close" and not refused:  # a close before the accept refuses the handshake
                refused = True
                WEBSOCKET_CONNECTIONS.labels("refused").inc()
            await send(message)

        try:
            await self.app(scope, counting_receive, counting_send)
        finally:
            if opened_at is not None:
                WEBSOCKET_OPEN.dec()
                WEBSOCKET_DURATION.observe(time.perf_counter() - opened_at)
            elif not refused:  # the app ended (or failed) without answering the handshake
                WEBSOCKET_CONNECTIONS.labels("refused").inc()
