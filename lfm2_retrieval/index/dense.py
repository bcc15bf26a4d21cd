"""The dense slot: one vector per chunk beside its token vectors, searched by inner product.

A dense vector (from the ColBERT model's own dense head, or from a separate dense encoder such
as multilingual-e5-small) is the third signal of hybrid search, strong where token matching is
weak: across languages and scripts. The manifest records the slot (`DenseSlot`: which encoder,
its dimension, how stored); each segment stores its chunks' vectors in `dense.bin`, float16,
row i for local chunk i, written and merged with the codes, covered by the same checksums.

Search is exhaustive (flat) with faiss's fp16 scalar-quantizer index, built per segment on first
use from the memory-mapped file, for segments below HNSW_MIN_CHUNKS; a larger segment is written
with an HNSW graph beside its vectors, whose candidates are scored exactly (the numbers are
below, by HNSW_MIN_CHUNKS). Filters and deletions reach faiss as a bitmap of allowed rows, so
the top k are the top k allowed ones.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

DENSE_FILE = "dense.bin"
DENSE_DTYPE = np.dtype(np.float16)


@dataclass(frozen=True)
class DenseSlot:
    """What an index's dense vectors are: who made them (the encoder spec a reader loads to
    encode queries the same way: "model", "e5" or a folder), their dimension, storage."""

    encoder: str
    dim: int
    encoder_id: str | None = None  # the encoder's own id when the slot was filled
    dtype: str = "float16"

    @classmethod
    def from_json(cls, raw: dict[str, Any] | None) -> "DenseSlot | None":
        if not raw:
            return None
        return cls(raw["encoder"], int(raw["dim"]), raw.get("encoder_id"), raw.get("dtype", "float16"))

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def checked_dense(vectors: Any, n: int, dim: int, ids: list[str] | None = None) -> np.ndarray:
    """[n, dim] float32 dense vectors, or a ValueError saying what is wrong with them."""
    array = np.asarray(vectors, dtype=np.float32)
    if array.ndim != 2 or array.shape != (n, dim):
        raise ValueError(f"dense vectors must be [{n}, {dim}] (one per chunk), got {array.shape}")
    bad = ~np.isfinite(array).all(axis=1)
    if bad.any():
        name = ids[int(np.flatnonzero(bad)[0])] if ids else int(np.flatnonzero(bad)[0])
        raise ValueError(f"chunk {name!r}: its dense vector has NaN or infinite values")
    return array


# Segments of at least this many chunks also get an HNSW graph (`dense.hnsw`), written with the
# segment: at 100,000 chunks flat search costs about 3.5 ms a query on one core against 0.2 ms for
# the graph (efSearch 128: recall@10 0.978 of exact on near-duplicate-heavy e5 vectors; its
# candidates are then scored exactly), which keeps three-signal hybrid within 1.2x of two-signal
# (eval/bench_dense.py). Below it flat search is exact and under a millisecond.
HNSW_MIN_CHUNKS = 20_000
HNSW_FILE = "dense.hnsw"
HNSW_M, HNSW_EF_CONSTRUCTION, HNSW_EF_SEARCH = 32, 64, 128
# A filter that leaves fewer than this share of the rows is searched flat (exact and cheap over
# few rows; a graph walk through mostly forbidden nodes loses recall).
HNSW_MIN_ALLOWED = 0.2


def build_hnsw(vectors: np.ndarray, path) -> None:
    """Write the HNSW graph of a segment's dense vectors (inner product, fp16 codes)."""
    import faiss

    index = faiss.IndexHNSWSQ(vectors.shape[1], faiss.ScalarQuantizer.QT_fp16, HNSW_M, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
    rows = np.asarray(vectors[: min(len(vectors), 4096)], np.float32)
    index.train(rows)  # fp16 needs no training; faiss asks for the call
    for start in range(0, len(vectors), 65536):
        index.add(np.asarray(vectors[start:start + 65536], np.float32))
    faiss.write_index(index, str(path))


def _selector(faiss, n: int, allowed: np.ndarray):
    bitmap = np.packbits(np.asarray(allowed, bool), bitorder="little")
    selector = faiss.IDSelectorBitmap(n, faiss.swig_ptr(bitmap))
    selector._bitmap = bitmap  # faiss reads it during the search: keep it alive until then
    return selector


class DenseSearcher:
    """The faiss index of one segment's dense vectors: flat (fp16 codes copied from the memory
    map on first use), and the segment's HNSW graph when it has one."""

    def __init__(self, vectors: np.ndarray, hnsw_path=None) -> None:
        import faiss

        n, dim = vectors.shape
        self._faiss, self.vectors = faiss, vectors
        self.index = faiss.IndexScalarQuantizer(dim, faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT)
        self.graph = None
        if hnsw_path is not None:
            self.graph = faiss.read_index(str(hnsw_path))
            self.graph.hnsw.efSearch = HNSW_EF_SEARCH
        elif n:
            codes = np.ascontiguousarray(vectors, dtype=DENSE_DTYPE).view(np.uint8).ravel()
            faiss.copy_array_to_vector(codes, self.index.codes)
            self.index.ntotal = n

    def search(self, queries: np.ndarray, k: int, allowed: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """(scores [nq, k'], rows [nq, k']) of the best allowed rows, -1 rows where fewer exist."""
        n = len(self.vectors)
        k = min(k, n)
        queries = np.ascontiguousarray(queries, np.float32)
        if k == 0:
            return np.zeros((len(queries), 0), np.float32), np.zeros((len(queries), 0), np.int64)
        if self.graph is not None and (allowed is None or np.count_nonzero(allowed) >= HNSW_MIN_ALLOWED * n):
            return self._graph_search(queries, k, allowed)
        if self.graph is not None and self.index.ntotal == 0:  # a narrow filter on a graph segment
            return self._flat_over(queries, k, np.flatnonzero(allowed))
        params = None if allowed is None else self._faiss.SearchParameters(sel=_selector(self._faiss, n, allowed))
        return self.index.search(queries, k, params=params)

    def _graph_search(self, queries: np.ndarray, k: int, allowed) -> tuple[np.ndarray, np.ndarray]:
        """The graph's candidates, scored exactly from the stored vectors."""
        params = self._faiss.SearchParametersHNSW(efSearch=max(HNSW_EF_SEARCH, 2 * k))
        if allowed is not None:
            params.sel = _selector(self._faiss, len(self.vectors), allowed)
        _, rows = self.graph.search(queries, k, params=params)
        scores = np.full(rows.shape, -np.inf, np.float32)
        for q, row in enumerate(rows):
            found = row >= 0
            scores[q, found] = np.asarray(self.vectors[row[found]], np.float32) @ queries[q]
        order = np.argsort(-scores, axis=1, kind="stable")
        return np.take_along_axis(scores, order, 1), np.take_along_axis(rows, order, 1)

    def _flat_over(self, queries: np.ndarray, k: int, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Exact scores over a few allowed rows (numpy: no index to build)."""
        k = min(k, len(rows))
        out_scores = np.full((len(queries), k), -np.inf, np.float32)
        out_rows = np.full((len(queries), k), -1, np.int64)
        if k == 0:
            return out_scores, out_rows
        sims = np.asarray(self.vectors[rows], np.float32) @ queries.T  # [rows, nq]
        for q in range(len(queries)):
            top = np.argsort(-sims[:, q], kind="stable")[:k]
            out_scores[q], out_rows[q] = sims[top, q], rows[top]
        return out_scores, out_rows
