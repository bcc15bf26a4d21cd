"""Optional OpenTelemetry traces of the HTTP API (`serve --otel`): a span per request (the
FastAPI instrumentation), and inside POST /search one per stage, "encode queries" and "search
index", so a slow request shows where its time went. Spans go over OTLP/HTTP to the collector
that OpenTelemetry's standard variables name (OTEL_EXPORTER_OTLP_ENDPOINT, default
http://localhost:4318; OTEL_SERVICE_NAME, default lfm2-search).

Off by default and not a runtime dependency: `pip install lfm2-search[otel]`. Off, a stage costs
a `nullcontext`; /health and /metrics are never traced (probes and scrapers would drown the rest).
"""

from __future__ import annotations

import os
from contextlib import nullcontext
from typing import Any

from .. import __version__

EXCLUDED = "health,metrics"


def enable(app, exporter: Any = None, batch: bool = True):
    """Trace `app`'s requests into `exporter` (default: OTLP over HTTP, configured by the
    environment); returns the tracer the routes' stage spans use, kept on the app's state.
    batch=False exports each span as it ends (tests)."""
    try:
        from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
    except ImportError as exc:
        raise RuntimeError(f"--otel needs OpenTelemetry's packages (pip install 'lfm2-search[otel]'): {exc}") from None
    if exporter is None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter()
    service = os.environ.get("OTEL_SERVICE_NAME", "lfm2-search")
    provider = TracerProvider(resource=Resource.create({"service.name": service, "service.version": __version__}))
    provider.add_span_processor(BatchSpanProcessor(exporter) if batch else SimpleSpanProcessor(exporter))
    FastAPIInstrumentor.instrument_app(app, tracer_provider=provider, excluded_urls=EXCLUDED)
    app.state.served.tracer = provider.get_tracer("lfm2_retrieval.api", __version__)
    app.state.tracer_provider = provider  # flushed and shut down with the app (app.py's lifespan)
    return app.state.served.tracer


def stage(tracer, name: str, **attributes):
    """A span named `name` under the request's, or nothing when tracing is off."""
    if tracer is None:
        return nullcontext()
    return tracer.start_as_current_span(name, attributes=attributes)
