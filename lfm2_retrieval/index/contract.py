"""The index contract: what the engine, the ingestion pipeline and the HTTP API may ask of an index,
named as Protocols (as PyLate's indexes/base.py names its own), with capabilities declared
instead of probed.

    SearchableIndex   one collection: MultiVectorIndex (index.py), or ShardedIndex (shards/)
    ShardSearch       where one shard's searches run: the shard's own MultiVectorIndex, or a
                      Ray Serve deployment (distributed/serving.py RemoteShard)
    Transaction       a change published by commit() when its `with` block ends cleanly:
                      IndexWriter, ShardedWriter, the engine's WriteSession

An index answers `capabilities`, so a caller asks `index.capabilities.shards` rather than
whether some method happens to exist.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, Self, runtime_checkable

import numpy as np

from .filters import Filter
from .manifest import Manifest
from .search import QueryPlan, SearchParams
from .snapshot import Hit


class Transaction:
    """A change that commits when its `with` block ends cleanly and is abandoned when the block
    raises: writers and write sessions, so nothing half-made is ever published."""

    def commit(self) -> Any:
        raise NotImplementedError

    def abort(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.abort()


@dataclass(frozen=True)
class Capabilities:
    """What an index can do beyond the contract's common part."""

    shards: bool = False  # shard_health(): each shard's status (a sharded index)
    query_plans: bool = False  # search(plans=...): a query's centroid scores made once for indexes sharing a codec


@runtime_checkable
class SearchableIndex(Protocol):
    """One collection of chunks, read at a commit and changed only by a writer's commits."""

    path: Path
    capabilities: Capabilities

    # facts of the commit being read
    @property
    def commit(self) -> int: ...
    @property
    def manifest(self) -> Manifest: ...
    @property
    def dim(self) -> int: ...
    @property
    def snapshot(self) -> Any: ...
    def __len__(self) -> int: ...
    def stats(self) -> dict[str, Any]: ...
    def check_compatible(self, dim: int, model_fingerprint: str | None = None) -> None: ...
    def refresh(self) -> bool: ...
    def close(self) -> None: ...

    # reading chunks
    def get(self, ids: Sequence[str]) -> list[dict[str, Any] | None]: ...
    def vectors(self, ids: Sequence[str]) -> list[np.ndarray | None]: ...
    def scan_metadata(self, keys: Sequence[str], filter: Filter | None = None) -> Iterable[tuple[str, dict]]: ...
    def ids_where(self, filter: Filter) -> list[str]: ...
    def iter_chunks(self, offset: int = 0, limit: int | None = None) -> Iterable[dict[str, Any]]: ...

    # searching: MaxSim over token vectors, BM25 over texts, inner product over dense vectors
    def search(self, queries: Sequence[np.ndarray], k: int = 10, filter: Filter | None = None,
               exhaustive: bool = False, params: SearchParams | None = None) -> list[list[Hit]]: ...
    def search_lexical(self, queries: Sequence[str], k: int = 10, filter: Filter | None = None) -> list[list[Hit]]: ...
    def resolve_query(self, query: str) -> Any: ...  # the query text with the languages BM25 reads it in
    def search_dense(self, queries: np.ndarray, k: int = 10, filter: Filter | None = None) -> list[list[Hit]]: ...
    def fill_dense(self, slot: Any, embed: Callable[[list[str]], np.ndarray], timeout: float = 0.0) -> int: ...

    # writing
    def writer(self, expected_tokens: int | None = None, timeout: float = 0.0) -> Any: ...
    def merge_segments(self, max_segments: int = ..., timeout: float = 0.0) -> int: ...
    def optimize(self, reencode: Callable[[list[str]], list[np.ndarray]] | None = None,
                 nbits: int | None = None,
                 reencode_dense: Callable[[list[str]], np.ndarray] | None = None,
                 analysis: Any = None) -> None: ...
    def reanalyze(self, analysis: Any, timeout: float = 0.0) -> int: ...


@runtime_checkable
class ShardSearch(Protocol):
    """Where a shard's searches run, each at the shard commit that `snapshot` names."""

    capabilities: Capabilities

    def search(self, queries: Sequence[np.ndarray], k: int = 10, filter: Filter | None = None,
               exhaustive: bool = False, params: SearchParams | None = None,
               plans: Sequence[QueryPlan] | None = None, snapshot: Any = None) -> list[list[Hit]]: ...
    def search_lexical(self, queries: Sequence[str], k: int = 10, filter: Filter | None = None,
                       collections: Sequence[Any] | None = None, snapshot: Any = None) -> list[list[Hit]]: ...
    def search_dense(self, queries: np.ndarray, k: int = 10, filter: Filter | None = None,
                     snapshot: Any = None) -> list[list[Hit]]: ...
    def lexical_statistics(self, query: Any, snapshot: Any = None) -> Any: ...  # TermStatistics (lexical.py)
    def health(self) -> dict[str, Any]: ...
