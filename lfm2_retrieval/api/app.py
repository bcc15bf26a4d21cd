"""The HTTP API: `lfm2-search serve`, or `create_app(engine)` in your own ASGI server.

    POST   /search            {"query": "...", "k": 10, "filter": {...}, "mode": "hybrid"} -> ranked chunks
    POST   /documents         {"documents": [{"id", "text", "metadata"}]} -> one atomic commit
    DELETE /documents/{id}    a document (all its chunks), by document id only
    DELETE /chunks/{id}       one chunk, by chunk id only
    GET    /health            model, index, counts (never needs the API key)
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

import hmac
import json
import logging
import os
import threading
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from fastapi import Depends, FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi_offline import FastAPIOffline
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..engine import RESERVED_METADATA, SearchEngine, TextDocument, validate_filter
from ..index.filters import MAX_FILTER_DEPTH
from ..errors import IndexDamagedError, NotFoundError, SearchError, as_search_error
from .batching import QueryBatcher, RequestCount
from ..shards import shard_policy
from .schemas import (AddDocumentsRequest, AddDocumentsResponse, DeleteResponse, ErrorResponse, HealthResponse,
                      Hit, IndexInfo, ModelInfo, QueryResults, SearchRequest, SearchResponse, ShardInfo)

API_KEY_ENV = "LFM2_SEARCH_API_KEY"
log = logging.getLogger("lfm2_search.api")


@dataclass
class ApiSettings:
    api_key: str | None = field(default_factory=lambda: os.environ.get(API_KEY_ENV) or None)
    max_body_bytes: int = 16 << 20
    max_batch: int = 32  # queries encoded together
    batch_window_ms: float = 2.0
    write_timeout_s: float = 30.0  # how long a write waits for another writer
    # Index searches running at once. Each already uses every core (torch threads); more at
    # once only adds contention, so extra requests queue here instead.
    max_concurrent_searches: int = field(default_factory=lambda: max(1, os.cpu_count() or 1))
    shard_timeout_s: float = 10.0  # sharded indexes: a shard slower than this is unavailable (503, or partial)


class ApiError(SearchError):
    """An answer only HTTP has (401 unauthorized), answered by the same handler as the rest."""

    def __init__(self, status: int, error: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.http_status, self.code, self.headers = status, error, headers


# Fields that identify or locate a chunk: never offered as filters on the page.
NOT_FACETS = {*RESERVED_METADATA, "source", "title", "section", "content_hash", "record_id", "page"}
FACET_VALUES = 30


def _facets(engine: SearchEngine) -> dict:
    """{"lang": {value: chunks}, "fields": {field: [[value, chunks], ...]}}: the fields whose
    values are few labels, what a search page can offer as filters."""
    fields = engine.field_values(FACET_VALUES, exclude=NOT_FACETS)
    lang = dict(fields.pop("lang", []))
    # [value, chunks] pairs keep each value's type (2020 stays a number, true a boolean).
    return {"lang": lang, "fields": {k: [[value, n] for value, n in v] for k, v in fields.items()}}


def _error(status: int, error: str, message: str, detail=None, headers=None) -> JSONResponse:
    body = ErrorResponse(error=error, message=message, detail=detail).model_dump()
    return JSONResponse(body, status_code=status, headers=headers)


class BodySizeLimit:
    """Reject request bodies over `limit` bytes with 413, whether or not Content-Length is sent."""

    def __init__(self, app, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            return await self._reject(scope, receive, send)
        chunks, size, more = [], 0, True
        while more:  # buffer the body (JSON bodies are read whole anyway), counting as it comes
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            more = message.get("more_body", False)
            if size > self.limit:
                return await self._reject(scope, receive, send)
        body, sent = b"".join(chunks), False

        async def replay():
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _reject(self, scope, receive, send) -> None:
        response = _error(413, "body_too_large", f"request bodies are limited to {self.limit} bytes")
        await response(scope, receive, send)


def create_app(engine: SearchEngine, settings: ApiSettings | None = None) -> FastAPI:
    settings = settings or ApiSettings()
    engine.encoder  # noqa: B018 - the model loads now, not in /health on the event loop
    searching = RequestCount()
    batcher = QueryBatcher(engine.encode_queries, settings.max_batch, settings.batch_window_ms / 1000,
                           alone=lambda: searching.value <= 1)
    search_slots = threading.BoundedSemaphore(settings.max_concurrent_searches)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        batcher.close()

    # /docs and /redoc from assets in the package fastapi-offline (Swagger UI 5, ReDoc), not a
    # CDN: the pages work on a machine without internet, as the rest of the server does.
    app = FastAPIOffline(
        title="lfm2-search",
        version="0.1.0",
        summary="Multilingual late-interaction search on the LFM2 backbone.",
        description=__doc__,
        lifespan=lifespan,
        responses={422: {"model": ErrorResponse, "description": "Invalid request"}},
    )
    app.state.engine, app.state.batcher, app.state.settings = engine, batcher, settings
    app.add_middleware(BodySizeLimit, limit=settings.max_body_bytes)
    bearer = HTTPBearer(auto_error=False, description=f"Required when the server has {API_KEY_ENV} set")

    def require_key(credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> None:
        if settings.api_key is None:
            return
        given = credentials.credentials if credentials else ""
        if not hmac.compare_digest(given.encode(), settings.api_key.encode()):
            raise ApiError(401, "unauthorized", "a valid API key is required: Authorization: Bearer <key>",
                           headers={"WWW-Authenticate": "Bearer"})

    auth = [Depends(require_key)]
    errors = {401: {"model": ErrorResponse}, 413: {"model": ErrorResponse}}

    # ------------------------------------------------------------------ errors
    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        details = json.loads(json.dumps(exc.errors(), default=str))
        for d in details:
            d.pop("input", None)  # do not echo (possibly huge) inputs back
            d.pop("ctx", None)
        first = details[0] if details else {}
        where = ".".join(str(p) for p in first.get("loc", ())[1:]) or "body"
        return _error(422, "invalid_request", f"{where}: {first.get('msg', 'invalid request')}", details)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400 and "parsing the body" in str(exc.detail):
            if isinstance(exc.__cause__, RecursionError):
                return _error(400, "invalid_request", "body: JSON nested too deeply (filters may nest "
                              f"{MAX_FILTER_DEPTH} levels of $or)")
            # FastAPI's answer to bytes that are not UTF-8: the same class of error as bad JSON.
            return _error(422, "invalid_request", "body: not valid UTF-8 JSON")
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return _error(exc.status_code, code, str(exc.detail), headers=getattr(exc, "headers", None))

    def _answer(known: SearchError) -> JSONResponse:
        detail = None
        if isinstance(known, IndexDamagedError):
            detail = {"part": known.part, "problem": known.problem}
        if known.http_status >= 500:
            log.error("%s: %s", known.code, known)
        headers = known.headers or ({"Retry-After": str(known.retry_after)} if known.retry_after else None)
        return _error(known.http_status, known.code, str(known), detail, headers=headers)

    @app.exception_handler(SearchError)
    async def _search_error(request: Request, exc: SearchError) -> JSONResponse:
        return _answer(exc)  # the package's own errors, by errors.py's table

    @app.exception_handler(OSError)
    async def _os_error(request: Request, exc: OSError) -> JSONResponse:
        known = as_search_error(exc, engine.path, engine.commit)  # a full disk: 507
        return _answer(known) if known else await _unexpected(request, exc)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return _error(500, "internal_error", f"{type(exc).__name__}: {exc}")

    # ------------------------------------------------------------------ the search page
    page = (Path(__file__).parent / "page.html").read_text(encoding="utf-8")
    facets_cache: dict[int, dict] = {}

    @app.get("/", include_in_schema=False)
    def search_page() -> HTMLResponse:
        """A search page: query box, modes, a language filter, and the matched words highlighted
        (explain). It calls /search and /facets with the API key the user types in."""
        return HTMLResponse(page)

    @app.get("/facets", dependencies=auth, responses=errors)
    def facets() -> dict:
        """The chunk count and, for filters, the values of each metadata field with few of them
        (at most FACET_VALUES: lang, a record's category...) with their chunk counts."""
        engine.refresh(max_age=0.5)
        commit = engine.commit
        if commit not in facets_cache:
            facets_cache.clear()
            facets_cache[commit] = {"chunks": len(engine), "commit": commit, **_facets(engine)}
        return facets_cache[commit]

    # ------------------------------------------------------------------ endpoints
    @app.post("/search", response_model=SearchResponse, response_model_exclude_unset=True, dependencies=auth,
              responses={**errors, 400: {"model": ErrorResponse}})
    def search(request: SearchRequest) -> SearchResponse:
        """Rank chunks by MaxSim for one query or several. Concurrent requests share encoder batches."""
        started = time.perf_counter()
        if request.filter is not None:
            validate_filter(request.filter)  # before the work of encoding: FilterError, 400
        texts = request.texts()
        with searching:
            vectors = batcher.encode(texts) if request.mode != "lexical" else None
            with search_slots, shard_policy(settings.shard_timeout_s, request.allow_partial) as shards:
                hits = engine.search_encoded(vectors, k=request.k, filter=request.filter, mode=request.mode,
                                             alpha=request.alpha, fusion=request.fusion, texts=texts,
                                             per_document=request.per_document)
        results = []
        for i, (q, qh) in enumerate(zip(texts, hits)):
            why = engine.explain_hits(q, qh, vectors[i]) if request.explain and vectors is not None else [None] * len(qh)
            results.append(QueryResults(query=q, hits=[
                Hit(id=h.id, score=h.score, text=h.text, metadata=h.metadata,
                    **({} if w is None else {"explain": [m.as_dict() for m in w]})) for h, w in zip(qh, why)]))
        partial = {"partial": True, "missing_shards": shards.missing} if shards.missing else {}
        return SearchResponse(results=results, commit=engine.commit,
                              took_ms=round((time.perf_counter() - started) * 1000, 3), **partial)

    @app.post("/documents", response_model=AddDocumentsResponse, dependencies=auth,
              responses={**errors, 409: {"model": ErrorResponse}})
    def add_documents(request: AddDocumentsRequest) -> AddDocumentsResponse:
        """Add or replace documents in one atomic commit. Long texts are chunked; each chunk keeps the metadata."""
        docs = [TextDocument(d.id, d.text, dict(d.metadata)) for d in request.documents]
        summary = engine.upsert(docs, replace=request.upsert, timeout=settings.write_timeout_s)
        return AddDocumentsResponse(documents=summary.documents, chunks=summary.chunks, commit=summary.commit)

    @app.delete("/documents/{doc_id:path}", response_model=DeleteResponse, dependencies=auth,
                responses={**errors, 404: {"model": ErrorResponse}, 409: {"model": ErrorResponse}})
    def delete_document(doc_id: str) -> DeleteResponse:
        """Delete a document (all its chunks) by its document id. Never a chunk: retrying the
        same request after the document is gone answers 404 and deletes nothing else."""
        done = engine.delete_documents([doc_id], timeout=settings.write_timeout_s)
        if done.chunks == 0:
            raise NotFoundError(f"no document with id {doc_id!r} (a single chunk is deleted with DELETE /chunks/ID)")
        return DeleteResponse(id=doc_id, deleted_chunks=done.chunks, commit=done.commit)

    @app.delete("/chunks/{chunk_id:path}", response_model=DeleteResponse, dependencies=auth,
                responses={**errors, 404: {"model": ErrorResponse}, 409: {"model": ErrorResponse}})
    def delete_chunk(chunk_id: str) -> DeleteResponse:
        """Delete one chunk by its chunk id (a hit's `id`, e.g. `guide.md#3`)."""
        done = engine.delete_chunks([chunk_id], timeout=settings.write_timeout_s)
        if done.chunks == 0:
            raise NotFoundError(f"no chunk with id {chunk_id!r}")
        return DeleteResponse(id=chunk_id, deleted_chunks=done.chunks, commit=done.commit)

    @app.get("/health", response_model=HealthResponse, response_model_exclude_unset=True)
    async def health() -> HealthResponse:
        """Liveness and what is served: the model and the index's counts (no API key needed).
        It runs on the event loop, not in the worker threads that searches fill, so it answers
        while every worker is busy (refreshing reads the manifest, and maps a new commit's
        segments when there is one)."""
        engine.refresh(max_age=0.5)
        counts = engine.counts
        shards = None
        if hasattr(engine.index, "shard_health"):
            with shard_policy(settings.shard_timeout_s):
                shards = [ShardInfo(**s) for s in await run_in_threadpool(engine.index.shard_health)]
        return HealthResponse(
            status="ok" if not shards or all(s.status == "ok" for s in shards) else "degraded",
            model=ModelInfo(source=engine.model_source, fingerprint=engine.encoder.fingerprint, dim=engine.encoder.dim),
            index=IndexInfo(path=str(engine.path), chunks=counts.chunks, tokens=counts.tokens, commit=engine.commit),
            **({"shards": shards} if shards is not None else {}),
        )

    return app
