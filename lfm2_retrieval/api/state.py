"""What one served index holds for its requests, kept on `app.state` and read by every router:
the engine, the settings, the query batcher, the search slots, the facets of the last commit."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field

from fastapi import Request

from ..engine import SearchEngine
from ..ingest.sources import PathView
from .batching import QueryBatcher, RequestCount
from .limits import RateLimiter
from .observability import Metrics

API_KEY_ENV = "LFM2_SEARCH_API_KEY"
READ_KEY_ENV = "LFM2_SEARCH_READ_KEY"


@dataclass
class ApiSettings:
    api_key: str | None = field(default_factory=lambda: os.environ.get(API_KEY_ENV) or None)  # reads and writes
    read_key: str | None = field(default_factory=lambda: os.environ.get(READ_KEY_ENV) or None)  # reads only
    cors_origins: list[str] = field(default_factory=list)  # browser origins allowed to call the API
    rate_limit: float | None = None  # requests a second per caller (its key, else its address); None: no limit
    max_body_bytes: int = 16 << 20
    max_batch: int = 32  # queries encoded together
    batch_window_ms: float = 2.0
    write_timeout_s: float = 30.0  # how long a write waits for another writer
    # Index searches running at once. Each already uses every core (torch threads); more at
    # once only adds contention, so extra requests queue here instead.
    max_concurrent_searches: int = field(default_factory=lambda: max(1, os.cpu_count() or 1))
    shard_timeout_s: float = 10.0  # sharded indexes: a shard slower than this is unavailable (503, or partial)
    otel: bool = False  # OpenTelemetry traces over OTLP (tracing.py)
    # File paths in ids and sources are shown relative to this folder and taken relative to it
    # in deletes and filters (ingest/sources.py's PathView); None: absolute, as the index holds them.
    root: str | None = field(default_factory=os.getcwd)


class Served:
    """The engine and what its requests share. `close` stops the batcher's worker."""

    def __init__(self, engine: SearchEngine, settings: ApiSettings) -> None:
        self.engine, self.settings = engine, settings
        self.paths = PathView(settings.root)
        self.searching = RequestCount()
        encoder = engine.encoder  # loads the model now, not in /health on the event loop
        # The request's texts are clean already (SearchRequest): the encoder takes them as they are.
        self.batcher = QueryBatcher(encoder.encode_queries, settings.max_batch, settings.batch_window_ms / 1000,
                                    alone=lambda: self.searching.value <= 1)
        # The dense leg's query encoder (e5: a second model) batches concurrent requests the same way.
        self.dense_batcher = QueryBatcher(lambda texts: list(engine.encode_dense_queries(texts)), settings.max_batch,
                                          settings.batch_window_ms / 1000, alone=lambda: self.searching.value <= 1)
        self.search_slots = threading.BoundedSemaphore(settings.max_concurrent_searches)
        self.facets: dict[int, dict] = {}  # {commit: facets}: computed once per commit
        self.metrics = Metrics(engine)
        self.rates = RateLimiter(settings.rate_limit) if settings.rate_limit else None
        self.tracer = None  # an OpenTelemetry tracer when traces are on (tracing.py)

    def close(self) -> None:
        self.batcher.close()
        self.dense_batcher.close()


async def served(request: Request) -> Served:
    """The dependency every endpoint takes: what create_app put on the app's state. Async, so it
    runs on the event loop: a sync dependency would wait for a worker thread, and /health must
    answer while searches hold every one of them."""
    return request.app.state.served
