"""One search, validated once: the request every front end hands the engine.

    request = SearchRequest(queries=["how do I reset it?"], k=5, filter={"lang": "en"})
    answer = engine.answer(request)            # SearchAnswer: hits per query, commit, time

The HTTP API takes this model as the body of POST /search (it is also its OpenAPI schema); the
CLI, the Python clients, the MCP server and the framework integrations build the same model, so
a rule (alpha belongs to interpolation, a query holds some text, a filter is well formed and
bounded, a query is text: lone surrogates are refused) is written here and nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, ValidationError, field_validator, model_validator

from ..errors import InvalidRequestError, SearchError
from ..index import Hit
from ..index.filters import validate as validate_filter
from .explain import TokenMatch
from .fusion import resolve
from .snippets import Snippet

MAX_QUERY_CHARS = 4096
MAX_QUERIES = 64
MAX_K = 1000  # k + offset: the deepest hit a request may reach
MAX_SNIPPET_CHARS = 4000

Query = Annotated[str, Field(min_length=1, max_length=MAX_QUERY_CHARS)]
Mode = Literal["semantic", "lexical", "dense", "hybrid"]


class SearchRequest(BaseModel):
    """Give `query` (one) or `queries` (several, answered in order), not both."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"query": "how are residuals compressed?", "k": 5},
        {"queries": ["first question", "second question"], "k": 10, "filter": {"lang": {"$in": ["en", "fr"]}}},
        {"query": "error code E-4012", "mode": "hybrid", "alpha": 0.7},
        {"query": "error code E-4012", "mode": "hybrid", "fusion": "rrf"},
        {"query": "rotate the keys", "k": 10, "offset": 10, "per_document": True},
    ]})

    query: Query | None = None
    queries: Annotated[list[Query], Field(min_length=1, max_length=MAX_QUERIES)] | None = None
    k: Annotated[int, Field(ge=1, le=MAX_K, strict=True)] = 10  # strict: "10" is an error, not 10
    offset: Annotated[int, Field(ge=0, lt=MAX_K, strict=True)] = Field(
        0, description="Hits to skip first (the next page: offset = k of the page before); k + offset <= 1000")
    filter: dict[str, Any] | None = Field(
        None, description='Metadata filter, e.g. {"lang": "en"}, {"year": {"$gte": 2020}}, '
                          '{"source": {"$in": [...]}}, {"source": {"$prefix": "/srv/docs/ja/"}}, '
                          '{"source": {"$glob": "*/guide/*.md"}}, {"$or": [...]}')
    mode: Mode = Field(
        "hybrid", description="hybrid (default): MaxSim and BM25 fused, and the dense vectors too where the index "
                              "has them (three signals); semantic: MaxSim only; lexical: BM25 only; dense: the "
                              "dense vectors only (an index with a dense slot)")
    fusion: Literal["rrf", "interpolation"] | None = Field(
        None, description="hybrid only: rrf (reciprocal rank fusion) or interpolation (of min-max normalised "
                          "scores, weighted by alpha); omitted: the engine's default, chosen on dev data")
    alpha: Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)] | None = Field(
        None, description="hybrid only: weight of the semantic side in score interpolation "
                          "(1: semantic only, 0: lexical only); omitted: the default alpha")
    dense_weight: Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)] | None = Field(
        None, description="hybrid with interpolation, on an index with dense vectors: the dense leg's weight (the "
                          "other legs share the rest by alpha); omitted: the default, chosen on dev data")
    explain: StrictBool = Field(
        False, description="With each hit, the token matches behind its MaxSim score: for each query token, the "
                           "chunk's token that won it (character spans of both, and the similarity), in "
                           "semantic and hybrid modes; in hybrid mode also each leg's share of the fused score.")
    highlight: StrictBool = Field(
        False, description="With each hit, a snippet: the window of its text that holds the most query words, "
                           "every word BM25 matches (whole words, stemmed in the chunk's language, no stop words) "
                           "highlighted by character spans and as HTML (<mark>); in every mode")
    snippet_chars: Annotated[int, Field(ge=0, le=MAX_SNIPPET_CHARS, strict=True)] = Field(
        240, description="With highlight: the snippet's length in characters (0: the whole chunk)")
    per_document: StrictBool = Field(
        False, description="One hit per document: its best chunk, with metadata.matched_chunks (how many of its "
                           "chunks ranked); k then counts documents")
    group_by: Literal["chunk", "document"] = Field(
        "chunk", description='"document": the same as per_document (one hit per document); "chunk": every chunk')
    allow_partial: StrictBool = Field(
        False, description="Sharded indexes: when a shard does not answer in time, answer from the other shards "
                           "and flag the response partial (missing_shards names them) instead of 503 "
                           "shard_unavailable")

    @field_validator("query")
    @classmethod
    def _query_text(cls, value: str | None) -> str | None:
        return None if value is None else _has_text(value)

    @field_validator("queries")
    @classmethod
    def _queries_text(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else [_has_text(v) for v in value]

    @field_validator("filter")
    @classmethod
    def _filter(cls, value: dict | None) -> dict | None:
        return None if value is None else validate_filter(value)  # a CheckedFilter: no layer checks it again

    @model_validator(mode="after")
    def _consistent(self) -> "SearchRequest":
        if (self.query is None) == (self.queries is None):
            raise ValueError("give exactly one of `query` and `queries`")
        resolve(self.fusion, self.alpha)  # fusion's own rule: alpha belongs to interpolation
        if self.mode != "hybrid" and (self.alpha is not None or self.fusion is not None
                                      or self.dense_weight is not None):
            raise ValueError("`alpha`, `fusion` and `dense_weight` apply to mode hybrid only")
        if self.dense_weight is not None and self.fusion == "rrf":
            raise ValueError("dense_weight applies to interpolation, not to rrf")
        if self.k + self.offset > MAX_K:
            raise ValueError(f"k + offset may be at most {MAX_K}")
        if self.group_by == "document":
            self.per_document = True
        return self

    @classmethod
    def of(cls, **fields: Any) -> "SearchRequest":
        """The request, or the package's own error (InvalidRequestError, FilterError) for a library
        caller, with the message the HTTP API would give."""
        try:
            return cls.model_validate(fields)
        except ValidationError as exc:
            raise request_error(exc) from None

    # ------------------------------------------------------------------ what the engine reads
    @property
    def texts(self) -> list[str]:
        """The query texts, cleaned, in order."""
        return [self.query] if self.query is not None else list(self.queries or [])

    @property
    def fusion_settings(self) -> tuple[str, float | None]:
        """(fusion, alpha) that a hybrid search runs: an alpha alone means interpolation."""
        return resolve(self.fusion, self.alpha)

    @property
    def needs_vectors(self) -> bool:
        """Whether the query's token vectors take part (the dense leg has its own encoder)."""
        return self.mode in ("semantic", "hybrid")

    @property
    def depth(self) -> int:
        """How many hits a query's ranking must hold: the page and every page before it."""
        return self.k + self.offset


def _has_text(text: str) -> str:
    # Lone surrogates (legal in JSON, not text) were refused by the string type already, so
    # every text here is one any tokenizer takes.
    if not text.strip():
        raise ValueError("the query is empty: it must contain some non-space text")
    return text


def request_error(exc: ValidationError) -> SearchError:
    """The first problem of a request as the package's error: a filter's own FilterError (400
    invalid_filter), else InvalidRequestError (422) whose message names the field."""
    first = exc.errors()[0]
    cause = (first.get("ctx") or {}).get("error")
    if isinstance(cause, SearchError):
        return cause
    where = ".".join(str(p) for p in first.get("loc", ()))
    message = first.get("msg", "invalid request").removeprefix("Value error, ")
    return InvalidRequestError(f"{where}: {message}" if where else message)


@dataclass
class QueryAnswer:
    query: str
    hits: list[Hit]
    explanations: list[list[TokenMatch]] | None = None  # with explain: one list per hit
    legs: list[dict[str, float]] | None = None  # with explain, hybrid: each leg's share of each hit's score
    snippets: list[Snippet] | None = None  # with highlight: one per hit
    relevance: list[float] | None = None  # where the model has a calibration: P(relevant) of each hit


@dataclass
class SearchAnswer:
    """What one request found: per query, in order; the commit it was read from; the time taken;
    on a sharded index with allow_partial, the shards that did not answer."""

    results: list[QueryAnswer]
    commit: int
    took_ms: float
    missing_shards: list[str] = field(default_factory=list)
