"""The dense slot: one vector per chunk beside its token vectors, searched by inner product.

A dense vector (from the ColBERT model's own dense head, or from a separate dense encoder such
as multilingual-e5-small) is the third signal of hybrid search, strong where token matching is
weak: across languages and scripts. The manifest records the slot (`DenseSlot`: which encoder,
its dimension, how stored); each segment stores its chunks' vectors in `dense.bin`, float16,
row i for local chunk i, written and merged with the codes, covered by the same checksums.

Search is exhaustive (flat) with faiss's fp16 scalar-quantizer index, built per segment on first
use from the memory-mapped file: at 100,000 chunks of 384 dimensions it answers a query in about
3 ms on one core (eval/bench_dense.py), against tens of milliseconds for the MaxSim leg, so an
approximate graph (HNSW) would trade recall for time that is not the bottleneck. Filters and
deletions reach faiss as a bitmap of allowed rows, so the top k are the top k allowed ones.
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


class DenseSearcher:
    """The faiss index of one segment's dense vectors (built lazily, kept with the segment)."""

    def __init__(self, vectors: np.ndarray) -> None:
        import faiss

        n, dim = vectors.shape
        self._faiss = faiss
        self.index = faiss.IndexScalarQuantizer(dim, faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT)
        if n:
            codes = np.ascontiguousarray(vectors, dtype=DENSE_DTYPE).view(np.uint8).ravel()
            faiss.copy_array_to_vector(codes, self.index.codes)
            self.index.ntotal = n

    def search(self, queries: np.ndarray, k: int, allowed: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """(scores [nq, k'], rows [nq, k']) of the best allowed rows, -1 rows where fewer exist."""
        n = self.index.ntotal
        k = min(k, n)
        if k == 0:
            return np.zeros((len(queries), 0), np.float32), np.zeros((len(queries), 0), np.int64)
        params = None
        if allowed is not None:
            bitmap = np.packbits(np.asarray(allowed, bool), bitorder="little")
            params = self._faiss.SearchParameters(
                sel=self._faiss.IDSelectorBitmap(n, self._faiss.swig_ptr(bitmap)))
            params._bitmap = bitmap  # faiss reads it during search: keep it alive until then
        scores, rows = self.index.search(np.ascontiguousarray(queries, np.float32), k, params=params)
        return scores, rows
