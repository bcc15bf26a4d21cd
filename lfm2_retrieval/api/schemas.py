"""Request and response bodies of the HTTP API (they are also its OpenAPI schema)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictStr, field_validator, model_validator

MAX_QUERY_CHARS = 4096
MAX_QUERIES = 64
MAX_K = 1000
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
MetadataValue = Annotated[StrictStr, Field(max_length=MAX_METADATA_VALUE_CHARS)] | StrictBool | Int64 | FiniteFloat | None
Metadata = Annotated[dict[Annotated[str, Field(min_length=1, max_length=128)], MetadataValue],
                     Field(max_length=MAX_METADATA_KEYS)]
Query = Annotated[str, Field(min_length=1, max_length=MAX_QUERY_CHARS)]


def _has_text(value: str) -> str:
    if not value.strip():
        raise ValueError("must contain some non-space text")
    return value


class SearchRequest(BaseModel):
    """Give `query` (one) or `queries` (several, answered in order), not both."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"query": "how are residuals compressed?", "k": 5},
        {"queries": ["first question", "second question"], "k": 10, "filter": {"lang": {"$in": ["en", "fr"]}}},
        {"query": "error code E-4012", "mode": "hybrid"},
        {"query": "error code E-4012", "mode": "hybrid", "alpha": 0.7},
        {"query": "error code E-4012", "mode": "hybrid", "fusion": "rrf"},
    ]})

    query: Query | None = None
    queries: Annotated[list[Query], Field(min_length=1, max_length=MAX_QUERIES)] | None = None
    k: Annotated[int, Field(ge=1, le=MAX_K, strict=True)] = 10  # strict: "10" is an error, not 10
    filter: dict[str, Any] | None = Field(
        None, description='Metadata filter, e.g. {"lang": "en"}, {"year": {"$gte": 2020}}, '
                          '{"source": {"$in": [...]}}, {"source": {"$prefix": "/srv/docs/ja/"}}, '
                          '{"source": {"$glob": "*/guide/*.md"}}, {"$or": [...]}')
    mode: Literal["semantic", "lexical", "hybrid"] = Field(
        "hybrid", description="hybrid (default): MaxSim and BM25, fused, the best on every task measured; "
                              "semantic: MaxSim only; lexical: BM25 only")
    fusion: Literal["rrf", "interpolation"] | None = Field(
        None, description="hybrid only: rrf (reciprocal rank fusion) or interpolation (of min-max normalised "
                          "scores, weighted by alpha); omitted: the engine's default, chosen on dev data")
    alpha: Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)] | None = Field(
        None, description="hybrid only: weight of the semantic side in score interpolation "
                          "(1: semantic only, 0: lexical only); omitted: the default alpha")
    explain: StrictBool = Field(
        False, description="With each hit, the token matches behind its MaxSim score: for each query token, the "
                           "chunk's token that won it (character spans of both, and the similarity). Semantic "
                           "and hybrid modes only.")
    per_document: StrictBool = Field(
        False, description="One hit per document: its best chunk, with metadata.matched_chunks (how many of its "
                           "chunks ranked); k then counts documents")

    allow_partial: StrictBool = Field(
        False, description="Sharded indexes: when a shard does not answer in time, answer from the other shards "
                           "and flag the response partial (missing_shards names them) instead of 503 "
                           "shard_unavailable")

    group_by: Literal["chunk", "document"] = Field(
        "chunk", description='"document": the same as per_document (one hit per document); "chunk": every chunk')

    @field_validator("query")
    @classmethod
    def _query_text(cls, value: str | None) -> str | None:
        return None if value is None else _has_text(value)

    @field_validator("queries")
    @classmethod
    def _queries_text(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else [_has_text(v) for v in value]

    @model_validator(mode="after")
    def _one_of(self) -> "SearchRequest":
        if (self.query is None) == (self.queries is None):
            raise ValueError("give exactly one of `query` and `queries`")
        if self.fusion == "rrf" and self.alpha is not None:
            raise ValueError("`alpha` applies to interpolation, not to rrf")
        if self.mode != "hybrid" and (self.alpha is not None or self.fusion is not None):
            raise ValueError("`alpha` and `fusion` apply to mode hybrid only")
        if self.group_by == "document":
            self.per_document = True
        return self

    def texts(self) -> list[str]:
        return [self.query] if self.query is not None else list(self.queries or [])


class TokenMatch(BaseModel):
    query_token: str = Field(description="The query's text of this token ('' for a query expansion token)")
    query_span: tuple[int, int] | None = Field(description="Its characters in the query (None: expansion)")
    document_span: tuple[int, int] = Field(description="The winning token's characters in the hit's text")
    score: float = Field(description="Their similarity: this query token's share of the MaxSim score")


class Hit(BaseModel):
    id: str = Field(description="The chunk id: the document id, '#', the chunk number")
    score: float = Field(description="MaxSim score")
    text: str
    metadata: dict[str, Any] = Field(description="Document metadata plus doc_id, chunk, start_char, "
                                                 "end_char (and source, page for indexed files)")
    explain: list[TokenMatch] | None = Field(None, description="With explain: true, the token matches behind "
                                                               "the score, best first")


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


class ModelInfo(BaseModel):
    source: str | None
    fingerprint: str
    dim: int


class IndexInfo(BaseModel):
    path: str
    chunks: int
    tokens: int
    commit: int


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
