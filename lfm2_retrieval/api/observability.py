"""What an operator sees: one access-log line a request, a request id on every answer, and
Prometheus metrics at GET /metrics (prometheus_client, the well-kept library).

    INFO lfm2_search.access POST /search 200 23.4 ms id=5f0c...   (logger "lfm2_search.access")
    X-Request-ID: 5f0c...        the caller's own id when it sends a sane one, else a new one

Metrics: lfm2_search_requests_total{method,route,status}, lfm2_search_request_seconds{route}
(histogram), lfm2_search_searches_total{mode}, and, read from the index at each scrape,
lfm2_search_index_chunks, lfm2_search_index_tokens, lfm2_search_index_commit. Each app has a
registry of its own, so several apps in one process (tests, a sharded ingress) never collide.
"""

from __future__ import annotations

import logging
import re
import time
import uuid

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily

access_log = logging.getLogger("lfm2_search.access")
REQUEST_ID = "x-request-id"
_SANE_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
# Search latencies on 2 cores run from about a millisecond (lexical) to seconds (many queries).
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    """The counters of one app, and the index's size read when Prometheus scrapes."""

    def __init__(self, engine) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("lfm2_search_requests", "HTTP requests answered", ["method", "route", "status"],
                                registry=self.registry)
        self.latency = Histogram("lfm2_search_request_seconds", "Time to answer a request", ["route"],
                                 buckets=BUCKETS, registry=self.registry)
        self.searches = Counter("lfm2_search_searches", "Queries searched, by mode", ["mode"], registry=self.registry)
        self.registry.register(_IndexSize(engine))

    def exposition(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class _IndexSize:
    """Gauges read from the engine at scrape time (no bookkeeping on the write path)."""

    def __init__(self, engine) -> None:
        self.engine = engine

    def collect(self):
        counts = self.engine.counts
        for name, help_, value in (("chunks", "Chunks in the index", counts.chunks),
                                   ("tokens", "Token vectors in the index", counts.tokens),
                                   ("commit", "The commit being served", self.engine.commit)):
            yield GaugeMetricFamily(f"lfm2_search_index_{name}", help_, value=value)


class RequestLog:
    """ASGI middleware: a request id (the caller's, or a new one) on the answer and in the log
    line; one access-log line and the request metrics for every HTTP request."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        given = dict(scope.get("headers") or []).get(REQUEST_ID.encode(), b"").decode("latin-1")
        request_id = given if _SANE_ID.fullmatch(given) else uuid.uuid4().hex
        started, status = time.perf_counter(), [500]

        async def send_with_id(message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
                message = {**message, "headers": [*message.get("headers", []),
                                                   (REQUEST_ID.encode(), request_id.encode())]}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            seconds = time.perf_counter() - started
            route = getattr(scope.get("route"), "path", None) or "unmatched"  # a template: few labels
            served = getattr(scope["app"].state, "served", None) if "app" in scope else None
            if served is not None:
                served.metrics.requests.labels(scope["method"], route, str(status[0])).inc()
                served.metrics.latency.labels(route).observe(seconds)
            access_log.info("%s %s %d %.1f ms id=%s", scope["method"], scope["path"], status[0], seconds * 1000,
                            request_id)
