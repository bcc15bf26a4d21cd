"""GET /health: liveness and what is served, without the API key; GET /metrics for Prometheus."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Response
from fastapi.concurrency import run_in_threadpool

from ...shards import shard_policy
from ..auth import require_key
from ..schemas import ErrorResponse, HealthResponse, IndexInfo, ModelInfo, ShardInfo
from ..state import Served, served

router = APIRouter()


@router.get("/health", response_model=HealthResponse, response_model_exclude_unset=True)
async def health(state: Served = Depends(served)) -> HealthResponse:
    """Liveness and what is served: the model and the index's counts (no API key needed).
    It runs on the event loop, not in the worker threads that searches fill, so it answers
    while every worker is busy (refreshing reads the manifest, and maps a new commit's
    segments when there is one)."""
    engine = state.engine
    engine.refresh(max_age=0.5)
    counts = engine.counts
    shards = None
    if engine.index.capabilities.shards:
        with shard_policy(state.settings.shard_timeout_s):
            shards = [ShardInfo(**s) for s in await run_in_threadpool(engine.index.shard_health)]
    return HealthResponse(
        status="ok" if not shards or all(s.status == "ok" for s in shards) else "degraded",
        model=ModelInfo(source=engine.model_source, fingerprint=engine.encoder.fingerprint, dim=engine.encoder.dim),
        index=IndexInfo(path=str(engine.path), chunks=counts.chunks, tokens=counts.tokens, commit=engine.commit,
                        **({"dense": engine.dense_slot.to_json()} if engine.dense_slot else {})),
        **({"shards": shards} if shards is not None else {}),
    )


@router.get("/metrics", dependencies=[Depends(require_key)], response_class=Response,
            responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"},
                       401: {"model": ErrorResponse}})
async def metrics(state: Served = Depends(served)) -> Response:
    """Prometheus metrics (observability.py): requests by route and status, their latency,
    searches by mode, and the index's chunks, tokens and commit. Behind the API key when the
    server has one (give the scraper `authorization: Bearer <key>`)."""
    body, content_type = state.metrics.exposition()
    return Response(body, media_type=content_type)
