"""Request and response bodies of the HTTP API (they are also its OpenAPI schema). The body of
POST /search is the engine's own SearchRequest (engine/request.py): one model, validated once."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictStr, field_validator

from ..engine.request import SearchAnswer
from ..ingest.sources import PathView

MAX_DOCUMENTS = 256
# One request must not hold the server for minutes: at about 11k tokens/s on 2 cores, 200k
# characters (about 50k tokens) encode in seconds. Larger texts go through `lfm2-search index`,
# which streams and commits in pieces.
MAX_DOCUMENT_CHARS = 200_000
MAX_REQUEST_CHARS = 500_000
MAX_ID_CHARS = 512
MAX_METADATA_KEYS = 64
# Metadata is stored with every chunk of its document: a 4 MB value on a 300-chunk document once
# took the server to 6.4 GB. Values are labels to filter on, not text to store.
MAX_METADATA_VALUE_CHARS = 2048

Int64 = Annotated[int, Field(ge=-(2**63), le=2**63 - 1, strict=True)]
FiniteFloat = Annotated[float, Field(allow_inf_nan=False, strict=True)]
MetadataValue = (
    Annotated[StrictStr, Field(max_length=MAX_METADATA_VALUE_CHARS)] | StrictBool | Int64 | FiniteFloat | None
)
Metadata = Annotated[dict[Annotated[str, Field(min_length=1, max_length=128)], MetadataValue],
                     Field(max_length=MAX_METADATA_KEYS)]

def _has_text(value: str) -> str:
    if not value.strip():
        raise ValueError("must contain some non-space text")
    return value


class TokenMatch(BaseModel):
    query_token: str = Field(description="The query's text of this token ('' for a query expansion token)")
    query_span: tuple[int, int] | None = Field(description="Its characters in the query (None: expansion)")
    document_span: tuple[int, int] = Field(description="The winning token's characters in the hit's text")
    score: float = Field(description="Their similarity: this query token's share of the MaxSim score")


class Snippet(BaseModel):
    text: str = Field(description="The window of the hit's text with the most query words (an ellipsis where "
                                  "it was cut)")
    highlights: list[tuple[int, int]] = Field(description="Character spans of the matched words in `text`")
    start: int = Field(description="Where the window starts in the hit's text")
    formatted: str = Field(description="`text` as HTML: escaped, each matched word in <mark>...</mark>")


class Hit(BaseModel):
    id: str = Field(description="The chunk id: the document id, '#', the chunk number")
    score: float = Field(description="The score of the request's mode: MaxSim, BM25, dense inner product, or the "
                                     "fused score (normalised within the query: the first hit's is 1.0)")
    relevance: float | None = Field(None, description="An estimate of the probability that the hit is relevant, "
                                                      "comparable across queries (fitted on dev data; semantic, "
                                                      "lexical and two-signal hybrid modes, models with a "
                                                      "calibration): what a threshold should read")
    text: str
    metadata: dict[str, Any] = Field(description="Document metadata plus doc_id, chunk, start_char, "
                                                 "end_char (and source, page for indexed files)")
    explain: list[TokenMatch] | None = Field(None, description="With explain: true, the token matches behind "
                                                               "the score, best first")
    legs: dict[str, float] | None = Field(None, description="With explain: true in hybrid mode, each leg's share "
                                                            "of the fused score (semantic, dense, lexical)")
    snippet: Snippet | None = Field(None, description="With highlight: true, the part of the text that answers "
                                                      "the query, its matched words highlighted")


class QueryResults(BaseModel):
    query: str
    hits: list[Hit]


class SearchResponse(BaseModel):
    results: list[QueryResults] = Field(description="One entry per query, in request order")
    commit: int = Field(description="The index commit these results come from")
    took_ms: float
    partial: bool | None = Field(None, description="Present and true when shards did not answer (allow_partial): "
                                                   "the results come from the other shards only")
    missing_shards: list[str] | None = Field(None, description="With partial: the shards left out")

    @classmethod
    def of(cls, answer: SearchAnswer, paths: PathView | None = None) -> "SearchResponse":
        """The engine's answer as the API's body (and the clients' result); file paths in ids,
        `source` and `doc_id` as `paths` shows them (ingest/sources.py; None: as held)."""
        paths = paths or PathView(None)
        results = [QueryResults(query=r.query, hits=[
            Hit(id=paths.shown(h.id), score=h.score, text=h.text, metadata=paths.shown_metadata(h.metadata),
                **({} if r.relevance is None else {"relevance": r.relevance[i]}),
                **({} if r.explanations is None else {"explain": [m.as_dict() for m in r.explanations[i]]}),
                **({} if r.legs is None else {"legs": r.legs[i]}),
                **({} if r.snippets is None else {"snippet": r.snippets[i].as_dict()}))
            for i, h in enumerate(r.hits)]) for r in answer.results]
        partial = {"partial": True, "missing_shards": answer.missing_shards} if answer.missing_shards else {}
        return cls(results=results, commit=answer.commit, took_ms=answer.took_ms, **partial)


class DocumentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: Annotated[StrictStr, Field(min_length=1, max_length=MAX_ID_CHARS)]
    text: Annotated[StrictStr, Field(min_length=1, max_length=MAX_DOCUMENT_CHARS)]
    metadata: Metadata = Field(default_factory=dict)

    @field_validator("text")
    @classmethod
    def _text(cls, value: str) -> str:
        return _has_text(value)

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        if value != value.strip() or any(ord(c) < 32 for c in value):
            raise ValueError("ids may not have leading or trailing spaces or control characters")
        return value


class AddDocumentsRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"documents": [{"id": "faq-1", "text": "Reset the device by holding the button.", "metadata": {"lang": "en"}}]},
    ]})

    documents: Annotated[list[DocumentIn], Field(min_length=1, max_length=MAX_DOCUMENTS)]
    upsert: StrictBool = Field(True, description="Replace documents whose id exists (else: 409 Conflict)")

    @field_validator("documents")
    @classmethod
    def _bounded(cls, value: list[DocumentIn]) -> list[DocumentIn]:
        total = sum(len(d.text) for d in value)
        if total > MAX_REQUEST_CHARS:
            raise ValueError(f"the documents hold {total:,} characters; one request takes at most "
                             f"{MAX_REQUEST_CHARS:,} (split it, or index large files with `lfm2-search index`)")
        return value


class AddDocumentsResponse(BaseModel):
    documents: int
    chunks: int
    commit: int


class DeleteResponse(BaseModel):
    id: str
    deleted_chunks: int
    commit: int


class DeleteWhereRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    filter: dict[str, Any] = Field(description='The chunks to delete, by metadata, as search filters name them: '
                                               '{"ref_doc_id": "manual-7"}, {"source": {"$prefix": "docs/old/"}}')


class DeleteWhereResponse(BaseModel):
    deleted_chunks: int = Field(description="Chunks deleted (0: none matched, and no commit was made)")
    commit: int


class ModelInfo(BaseModel):
    source: str | None
    fingerprint: str
    dim: int


class IndexInfo(BaseModel):
    path: str
    chunks: int
    tokens: int
    commit: int
    dense: dict[str, Any] | None = Field(None, description="The dense slot (encoder, dim, dtype) when the index "
                                                           "keeps a dense vector per chunk: hybrid then fuses three "
                                                           "signals, and mode dense is open")


class ShardInfo(BaseModel):
    name: str
    status: Literal["ok", "unavailable"]
    chunks: int | None = None
    commit: int | None = None
    replicas: int | None = Field(None, description="Ray Serve: running replicas of the shard's deployment")
    problem: str | None = None


class HealthResponse(BaseModel):
    status: Literal["ok", "degraded"] = Field(description="degraded: a shard is unavailable")
    model: ModelInfo
    index: IndexInfo
    shards: list[ShardInfo] | None = Field(None, description="Sharded indexes: each shard")


class ErrorResponse(BaseModel):
    error: str = Field(description="A short machine-readable code, e.g. invalid_request")
    message: str = Field(description="What went wrong, for people")
    detail: Any = None
