"""POST /search, and the search page (GET /, GET /facets) that calls it."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
from fastapi import APIRouter, Depends
from fastapi.responses import HTMLResponse

from ...engine import RESERVED_METADATA, SearchEngine, SearchRequest
from ...index.filters import validate as validate_filter
from ..auth import require_key
from ..schemas import ErrorResponse, SearchResponse
from ..state import Served, served
from ..tracing import stage

router = APIRouter()
ERRORS = {401: {"model": ErrorResponse}, 413: {"model": ErrorResponse}}

# Fields that identify or locate a chunk: never offered as filters on the page.
NOT_FACETS = {*RESERVED_METADATA, "source", "title", "section", "content_hash", "record_id", "page"}
FACET_VALUES = 30
PAGE = Path(__file__).parent.parent / "page.html"


@router.post("/search", response_model=SearchResponse, response_model_exclude_unset=True,
             dependencies=[Depends(require_key)], responses={**ERRORS, 400: {"model": ErrorResponse}})
def search(request: SearchRequest, state: Served = Depends(served)) -> SearchResponse:
    """Rank chunks for one query or several. Concurrent requests share encoder batches."""
    if request.filter is not None and state.paths.root:  # relative file paths, taken from the server's root
        request = request.model_copy(update={"filter": validate_filter(state.paths.held_filter(request.filter))})
    with state.searching:
        with stage(state.tracer, "encode queries", queries=len(request.texts)):
            vectors = state.batcher.encode(request.texts) if request.needs_vectors else None
            dense = np.stack(state.dense_batcher.encode(request.texts)) if state.engine.needs_dense(request) else None
        with state.search_slots, stage(state.tracer, "search index", mode=request.mode, k=request.k):
            answer = state.engine.answer(request, vectors, shard_timeout_s=state.settings.shard_timeout_s, dense=dense)
    state.metrics.searches.labels(request.mode).inc(len(answer.results))
    return SearchResponse.of(answer, state.paths)


@router.get("/", include_in_schema=False)
def search_page() -> HTMLResponse:
    """A search page: query box, modes, a language filter, and the matched words highlighted
    (explain). It calls /search and /facets with the API key the user types in."""
    return HTMLResponse(_page())


@functools.cache
def _page() -> str:
    return PAGE.read_text(encoding="utf-8")


@router.get("/facets", dependencies=[Depends(require_key)], responses=ERRORS)
def facets(state: Served = Depends(served)) -> dict:
    """The chunk count and, for filters, the values of each metadata field with few of them
    (at most FACET_VALUES: lang, a record's category...) with their chunk counts."""
    engine = state.engine
    engine.refresh(max_age=0.5)
    commit = engine.commit
    if commit not in state.facets:
        state.facets.clear()
        state.facets[commit] = {"chunks": len(engine), "commit": commit, **facets_of(engine)}
    return state.facets[commit]


def facets_of(engine: SearchEngine) -> dict:
    """{"lang": {value: chunks}, "fields": {field: [[value, chunks], ...]}}: the fields whose
    values are few labels, what a search page can offer as filters."""
    fields = engine.field_values(FACET_VALUES, exclude=NOT_FACETS)
    lang = dict(fields.pop("lang", []))
    # [value, chunks] pairs keep each value's type (2020 stays a number, true a boolean).
    return {"lang": lang, "fields": {k: [[value, n] for value, n in v] for k, v in fields.items()}}
