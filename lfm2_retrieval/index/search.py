"""PLAID-style search over compressed segments, and exact exhaustive MaxSim.

For one query (token vectors Q, [nq, dim]) and one segment, in three stages of narrowing work:

1. Candidates. Centroid scores S = Q C^T. Each query token probes its `nprobe` best centroids
   (doubled while that yields under half of `candidates` chunks, as with selective filters);
   the inverted file gives the chunks with a token at any probed centroid. Each candidate
   gets a cheap bound from the probed centroids alone: sum_q max_{c probed, c in doc} S[q, c].
   The best `candidates` survive.
2. Centroid interaction (PLAID). Every token of a surviving chunk is stood in for by its
   centroid: sum_q max_t S[q, code[t]], with centroid pruning (centroids whose best score
   over the query is below `centroid_threshold` count as 0). The best `rerank` survive.
3. Exact MaxSim on the decompressed (and L2-normalised) vectors of those chunks; the top
   k are returned.

The centroid scores, the pruning mask and each query token's best centroids are computed once
per query (QueryPlan) and shared by all segments; stages 2 and 3 run as compiled loops
(kernels.py) that read each token once.

Filters and deletions arrive as a boolean mask over the segment's chunks and remove
chunks before stage 1's scoring. When the mask leaves no more than `rerank` chunks,
they are all scored exactly (a selective filter never loses results to pruning).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from . import kernels
from .codec import ResidualCodec
from .segment import Segment


@dataclass(frozen=True)
class SearchParams:
    nprobe: int
    candidates: int
    rerank: int
    centroid_threshold: float = 0.4
    probe_docs: int | None = None  # stage 1's probing target; None: min(candidates / 2, 4 * rerank)

    @property
    def probe_target(self) -> int:
        """Probing widens while it finds fewer chunks than this: enough to fill the exact
        stage several times over (filters and sparse lists), without chasing `candidates`."""
        return self.probe_docs or min(self.candidates // 2, 4 * self.rerank)

    @classmethod
    def for_k(cls, k: int, nbits: int = 2) -> "SearchParams":
        """Defaults that widen with k (as PLAID's do), tuned on eval/bench_index.py: for k <= 10,
        recall@10 0.99+ against the exhaustive search on synthetic 100k chunks and on
        SciFact's real vectors. Unpruned centroid interaction ranks well enough that 128
        chunks suffice for the exact stage (with pruning at 0.3 it took 512). At nbits 4 the
        exact scores are finer than the centroid ranking that feeds them, so the exact stage
        takes 160 (synthetic 100k: recall 0.986 -> 0.994 of exhaustive, p50 +0 to 1 ms) while
        probing keeps the target of 128 (following the rerank count up had cost +4 ms)."""
        if k <= 10:
            return cls(nprobe=12, candidates=2048, rerank=160 if nbits >= 4 else 128, centroid_threshold=0.0,
                       probe_docs=512)
        if k <= 100:
            return cls(nprobe=16, candidates=4096, rerank=max(1024, 8 * k), centroid_threshold=0.3)
        return cls(nprobe=24, candidates=max(8192, 8 * k), rerank=max(4096, 4 * k), centroid_threshold=0.25)


def similarities(vectors: np.ndarray, q: np.ndarray) -> np.ndarray:
    """vectors @ q.T, token-major ([n, nq]): gathers then read contiguous rows of nq floats.

    Through torch: all matrix products of a search share one thread pool; mixing numpy's BLAS
    threads with torch's makes them spin against each other on few cores (a 0.7 ms top-k took
    3 ms after a numpy matmul). This orientation is also about 2x faster than q @ vectors.T.
    """
    return (torch.from_numpy(vectors) @ torch.from_numpy(q).T).numpy()


def maxsim_per_doc(sims: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """sims [n_tok, nq] for chunks of `counts` consecutive tokens -> MaxSim score per chunk.

    A scatter-max into [n_docs, nq] (torch): 4x faster here than numpy's maximum.reduceat,
    which does not vectorise over the query axis, and than torch.segment_reduce.
    """
    nq = sims.shape[1]
    owner = torch.from_numpy(np.repeat(np.arange(len(counts)), counts))
    best = torch.full((len(counts), nq), -torch.inf)
    best.scatter_reduce_(0, owner[:, None].expand(-1, nq), torch.from_numpy(sims), "amax", include_self=True)
    return best.sum(1).numpy()


def exact_scores(segment: Segment, codec: ResidualCodec, q: np.ndarray, docs: np.ndarray) -> np.ndarray:
    """MaxSim of q against the decompressed, normalised vectors of `docs` (compiled kernel)."""
    starts = segment.doc_offsets[docs].astype(np.int64)
    ends = segment.doc_offsets[docs + 1].astype(np.int64)
    return kernels.exact_maxsim(q, codec.centroids, codec.byte_table, segment.codes, segment.residuals, starts, ends)


class QueryPlan:
    """What a query needs from the codec, computed once for all segments: the similarity of
    every centroid to every query token ([K, nq]; rows are gathered by token codes), the
    pruning mask, and each query token's best centroids (widened on demand)."""

    def __init__(self, codec: ResidualCodec, q: np.ndarray, params: "SearchParams") -> None:
        self.scores = (torch.from_numpy(codec.centroids) @ torch.from_numpy(q).T).numpy()
        self.threshold = params.centroid_threshold
        self.order, self.keep = kernels.probe_order(self.scores, params.nprobe, self.threshold)
        self.max_probe = min(codec.num_centroids, 16 * params.nprobe)
        # Stage 2's scores: a pruned centroid's row is zeros (PLAID's centroid pruning).
        self.pruned = self.scores if self.keep.all() else self.scores * self.keep[:, None]

    def probed(self, nprobe: int) -> np.ndarray:
        """The centroids probed by the `nprobe` best of each query token, once each."""
        if nprobe > self.order.shape[1]:
            self.order, _ = kernels.probe_order(self.scores, nprobe, self.threshold)
        return np.unique(self.order[:, :nprobe])


def _top(scores: np.ndarray, docs: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    if len(docs) > n:
        keep = np.argpartition(-scores, n - 1)[:n]
        docs, scores = docs[keep], scores[keep]
    order = np.argsort(-scores, kind="stable")
    return docs[order], scores[order]


def search_segment(segment: Segment, codec: ResidualCodec, q: np.ndarray, plan: QueryPlan,
                   allowed: np.ndarray | None, k: int, params: SearchParams) -> tuple[np.ndarray, np.ndarray]:
    """(local chunk numbers, scores) of the best k allowed chunks of one segment."""
    if segment.n_docs == 0:
        return np.empty(0, np.int64), np.empty(0, np.float32)
    n_allowed = segment.n_docs if allowed is None else int(allowed.sum())
    if n_allowed == 0:
        return np.empty(0, np.int64), np.empty(0, np.float32)
    if n_allowed <= max(params.rerank, k):
        docs = np.arange(segment.n_docs) if allowed is None else np.flatnonzero(allowed)
        return _top(exact_scores(segment, codec, q, docs), docs, k)

    # Stage 1: candidates from probed centroids, scored by those centroids alone. Probing
    # widens while it yields under half the candidate budget (sparse lists, filters).
    centroid_scores = plan.scores
    max_probe = plan.max_probe
    nprobe = min(params.nprobe, max_probe)
    while True:
        pair_docs, pair_cent = segment.ivf_lookup(plan.probed(nprobe))
        if allowed is not None:
            ok = allowed[pair_docs]
            pair_docs, pair_cent = pair_docs[ok], pair_cent[ok]
        docs, inverse = np.unique(pair_docs, return_inverse=True)
        if len(docs) >= params.probe_target or nprobe >= max_probe:
            break
        nprobe = min(2 * nprobe, max_probe)
    if len(docs) == 0:
        return np.empty(0, np.int64), np.empty(0, np.float32)
    if len(docs) > params.candidates:
        nq = centroid_scores.shape[1]
        bound = torch.zeros(len(docs), nq)
        bound.scatter_reduce_(0, torch.from_numpy(inverse)[:, None].expand(-1, nq),
                              torch.from_numpy(np.take(centroid_scores, pair_cent, axis=0)), "amax",
                              include_self=True)
        docs, _ = _top(bound.sum(1).numpy(), docs, params.candidates)

    # Stage 2: centroid interaction over every token of the candidates, with pruning.
    if len(docs) > params.rerank:
        starts = segment.doc_offsets[docs].astype(np.int64)
        ends = segment.doc_offsets[docs + 1].astype(np.int64)
        approx = kernels.centroid_interaction(plan.pruned, segment.codes, starts, ends)
        docs, _ = _top(approx, docs, params.rerank)

    # Stage 3: exact MaxSim on decompressed vectors.
    return _top(exact_scores(segment, codec, q, docs), docs, k)


def exhaustive_segment(segment: Segment, codec: ResidualCodec, q: np.ndarray, allowed: np.ndarray | None,
                       k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact MaxSim against every allowed chunk (decompressed): no candidate pruning."""
    docs = np.arange(segment.n_docs) if allowed is None else np.flatnonzero(allowed)
    if len(docs) == 0:
        return np.empty(0, np.int64), np.empty(0, np.float32)
    return _top(exact_scores(segment, codec, q, docs), docs, k)
