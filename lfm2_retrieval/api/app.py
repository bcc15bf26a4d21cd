"""The HTTP API: `lfm2-search serve`, or `create_app(engine)` in your own ASGI server.

    POST   /search            {"query": "...", "k": 10, "filter": {...}, "mode": "hybrid"} -> ranked chunks
    POST   /documents         {"documents": [{"id", "text", "metadata"}]} -> one atomic commit
    DELETE /documents/{id}    a document (all its chunks), by document id only
    DELETE /chunks/{id}       one chunk, by chunk id only
    GET    /health            model, index, counts (never needs the API key)
    GET    /metrics           Prometheus metrics; every answer has an X-Request-ID and an access-log line
    GET    /docs, /redoc      interactive OpenAPI documentation (assets served locally: works offline)

Every error is a JSON `ErrorResponse`: invalid bodies (422), bad filters (400), unknown ids
(404), conflicts (409), bodies over the size limit (413), a missing or wrong API key (401), a
damaged index (500 index_damaged), a full disk (507; the index stays at its last commit), no file
descriptors or memory left or a device I/O error (503 with Retry-After: nothing is damaged, the
write was rolled back). A write is answered 2xx exactly when it was committed. The
statuses come from one table, lfm2_retrieval/errors.py, shared with the CLI's exit codes.
Searches are answered from the last commit while documents are being added.
"""

from __future__ import annotations

from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi_offline import FastAPIOffline

from .. import __version__
from ..engine import SearchEngine
from .errors import install_error_handlers
from .limits import BodySizeLimit
from .observability import RequestLog
from .routes import documents, health, search
from .schemas import ErrorResponse
from .state import API_KEY_ENV, ApiSettings, Served

__all__ = ["API_KEY_ENV", "ApiSettings", "create_app"]


def create_app(engine: SearchEngine, settings: ApiSettings | None = None) -> FastAPI:
    """The API over `engine`: its state on `app.state.served` (state.py), the routers under
    routes/, errors answered by errors.py. The model loads here, not on the first request."""
    served = Served(engine, settings or ApiSettings())

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        served.close()
        if getattr(app.state, "tracer_provider", None) is not None:
            app.state.tracer_provider.shutdown()  # the last spans are sent, not lost

    # /docs and /redoc from assets in the package fastapi-offline (Swagger UI 5, ReDoc), not a
    # CDN: the pages work on a machine without internet, as the rest of the server does.
    app = FastAPIOffline(
        title="lfm2-search",
        version=__version__,
        summary="Multilingual late-interaction search on the LFM2 backbone.",
        description=__doc__,
        lifespan=lifespan,
        responses={422: {"model": ErrorResponse, "description": "Invalid request"}},
    )
    app.state.served = served
    app.add_middleware(BodySizeLimit, limit=served.settings.max_body_bytes)
    if served.settings.cors_origins:  # pages on other origins may call the API (with a key, if one is set)
        app.add_middleware(CORSMiddleware, allow_origins=served.settings.cors_origins,
                           allow_methods=["GET", "POST", "DELETE"], allow_headers=["authorization", "content-type",
                                                                                   "x-request-id"],
                           expose_headers=["x-request-id", "retry-after"])
    app.add_middleware(RequestLog)  # outermost: it times and logs every answer, refusals included
    install_error_handlers(app)
    for routes in (search, documents, health):
        app.include_router(routes.router)
    if served.settings.otel:
        from .tracing import enable

        enable(app)
    return app
