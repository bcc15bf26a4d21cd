"""PLAID-style search over compressed segments, and exact exhaustive MaxSim.

For one query (token vectors Q, [nq, dim]) and the segments of one snapshot, in three stages of
narrowing work. The budgets of the stages are the snapshot's, not a segment's: every segment is
encoded by the one codec, so scores compare across segments, and an index of six segments does
the work of one segment of the same chunks (search_segments).

1. Candidates. Centroid scores S = Q C^T (in bfloat16 where the CPU multiplies it natively:
   centroid_scores). Each query token probes its `nprobe` best centroids
   (doubled while that yields under the probing target, as with selective filters); the
   inverted files give the chunks with a token at any probed centroid. Each candidate gets a
   cheap estimate from the probed centroids alone: sum_q max_{c probed by q, c in doc} S[q, c],
   where a query token none of whose probed centroids the chunk has counts a share of its last
   probed centroid's score (QueryPlan.unprobed_estimate; XTR's and WARP's estimate). The best
   `candidates` survive.
2. Centroid interaction (PLAID). Every token of a surviving chunk is stood in for by its
   centroid: sum_q max_t S[q, code[t]], with centroid pruning (centroids whose best score
   over the query is below `centroid_threshold` count as 0), S read as int16 (half the cache
   misses of float32 at 65k+ centroids). The best `rerank` survive.
3. Exact MaxSim on the decompressed (and L2-normalised) vectors of those chunks; the top
   k are returned.

The centroid scores, the pruning mask and each query token's best centroids are computed once
per query (QueryPlan) and shared by all segments (and by the shards of a sharded index); stages
2 and 3 run as compiled loops (kernels.py) that read each token once.

Filters and deletions arrive as a boolean mask over each segment's chunks and remove chunks
before stage 1's scoring. When the masks leave no more than `rerank` chunks in all, they are
all scored exactly (a selective filter never loses results to pruning).
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..hardware import native_bfloat16
from ..lazy import lazy_module
from .codec import ResidualCodec
from .segment import Segment

torch = lazy_module("torch")  # loaded by the first semantic search, not by opening an index
kernels = lazy_module("lfm2_retrieval.index.kernels")


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
        """Defaults that widen with k (as PLAID's do). For k <= 10 they are tuned on the real
        collection's dev queries, never the reported ones (`python -m eval.bench_index --index
        ... --dev`; docs/benchmarks.md): the fewest probes and candidates that keep recall@10
        against the index's exhaustive search at 0.99. Real token vectors sit far less close to
        their centroids than synthetic ones, so centroid interaction orders them loosely and the
        exact stage needs several hundred chunks. At nbits 2 it takes a fifth less."""
        if k <= 10:
            return cls(nprobe=8, candidates=3072, rerank=480 if nbits >= 4 else 384, centroid_threshold=0.0,
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


PLAN_DTYPE_ENV = "LFM2_SEARCH_PLAN_DTYPE"


@functools.cache
def plan_dtype() -> torch.dtype:
    """The precision of the query plan's product: $LFM2_SEARCH_PLAN_DTYPE (float32 or bfloat16)
    if set, else bfloat16 where the CPU multiplies it natively (hardware.py), float32 elsewhere."""
    return torch.bfloat16 if _plan_wants_bfloat16() else torch.float32


def _plan_wants_bfloat16() -> bool:
    """plan_dtype's choice, read without loading torch."""
    asked = os.environ.get(PLAN_DTYPE_ENV, "").strip().lower()
    if asked and asked not in ("float32", "bfloat16"):
        raise ValueError(f"{PLAN_DTYPE_ENV} must be float32 or bfloat16, not {asked!r}")
    return asked == "bfloat16" if asked else native_bfloat16()


def centroid_scores(codec: ResidualCodec, q: np.ndarray) -> np.ndarray:
    """[K, nq] float32: every centroid's similarity to every query token, the query plan's
    product. In bfloat16 where the CPU multiplies it natively (plan_dtype): about six times
    faster, and the product is the largest part of the plan, the largest stage at 1M chunks
    (docs/benchmarks.md). bfloat16 keeps 8 bits of mantissa, so a score
    moves by up to ~2e-3 (2e-4 on average); the plan only orders centroids and ranks candidates,
    and the exact stage rescores the survivors on float32 vectors: on dev queries the top 10 were
    the same as with float32. Where the plan is float32 and torch is not loaded (a one-shot
    search whose queries were encoded in numpy: model/numpy_queries.py), numpy's product:
    importing torch for one product would cost more than the whole search."""
    bfloat16 = _plan_wants_bfloat16()
    if not bfloat16 and "torch" not in sys.modules:
        return codec.centroids @ q.T
    if bfloat16:
        return (codec.centroids_bf16 @ torch.from_numpy(q).to(torch.bfloat16).T).float().numpy()
    return similarities(codec.centroids, q)


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


def _bounds(segment: Segment, docs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(first token, end token) of each of the segment's chunks `docs`."""
    return segment.doc_offsets[docs].astype(np.int64), segment.doc_offsets[docs + 1].astype(np.int64)


def exact_scores(segment: Segment, codec: ResidualCodec, q: np.ndarray, docs: np.ndarray) -> np.ndarray:
    """MaxSim of q against the decompressed, normalised vectors of `docs` (compiled kernel)."""
    return kernels.exact_maxsim(q, codec.centroids, codec.byte_table, segment.codes, segment.residuals,
                                *_bounds(segment, docs))


# Stage 1's estimate of an unprobed match, as a share of the last probed centroid's score (see
# QueryPlan.unprobed_estimate). On the real collection (eval/bench_index.py --index; 60 queries)
# the true top 10 were among 2,048 candidates at 0.953 with 0 (no estimate), 0.982 at 0.8, 0.990
# at 0.9, 0.995 at 0.95, and 0.947 at 1.0, where a match at the last probed centroid counts no
# more than none.
MISSING_SHARE = 0.9


class QueryPlan:
    """What a query needs from the codec, computed once for all segments: the similarity of
    every centroid to every query token ([K, nq]; rows are gathered by token codes), the
    pruning mask, stage 2's int16 copy of the scores, and each query token's best centroids
    (widened on demand)."""

    def __init__(self, codec: ResidualCodec, q: np.ndarray, params: "SearchParams") -> None:
        self.threshold = params.centroid_threshold
        # One product (torch's threads; bfloat16 where native: centroid_scores), then the scan
        # for each token's best centroids (a part a core, kernels.probe_order). Blocked
        # products, each scanned while in cache, were slower: the hand-offs between torch's
        # threads and the scan cost more than the cache saved.
        self.scores = centroid_scores(codec, q)
        self.table = np.empty(self.scores.shape, dtype=np.int16)  # stage 2's scores (kernels.TABLE_SCALE)
        self.order, self.keep = kernels.probe_order(self.scores, params.nprobe, self.threshold, self.table)
        self.max_probe = min(codec.num_centroids, 16 * params.nprobe)

    def probed(self, nprobe: int) -> np.ndarray:
        """The centroids probed by the `nprobe` best of each query token, once each."""
        self._widen(nprobe)
        return np.unique(self.order[:, :nprobe])

    def token_probes(self, nprobe: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(probed centroids once each, ascending; [nq, nprobe] where each query token's best
        centroids are in that array, best first; [nq, nprobe] the token's scores of them)."""
        probed = self.probed(nprobe)
        order = self.order[:, :nprobe]
        return probed, np.searchsorted(probed, order), self.scores[order, np.arange(len(order))[:, None]]

    def unprobed_estimate(self, nprobe: int) -> np.ndarray:
        """[nq]: what stage 1 counts for a query token none of whose probed centroids a chunk
        has: MISSING_SHARE of the score of the token's last probed centroid, which bounds any
        unprobed one (the missing-similarity estimate of XTR and WARP). Counting 0 instead
        ranked real chunks so poorly that the true top 10 needed 12k candidates, not 2k."""
        self._widen(nprobe)
        last = self.order[:, nprobe - 1]
        return MISSING_SHARE * self.scores[last, np.arange(len(last))]

    def _widen(self, nprobe: int) -> None:
        if nprobe > self.order.shape[1]:
            self.order, _ = kernels.probe_order(self.scores, nprobe, self.threshold)


def _top(scores: np.ndarray, docs: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    if len(docs) > n:
        keep = np.argpartition(-scores, n - 1)[:n]
        docs, scores = docs[keep], scores[keep]
    order = np.argsort(-scores, kind="stable")
    return docs[order], scores[order]


@dataclass
class _Found:
    """A segment's chunks at some stage of a search: local chunk numbers and their scores."""
    segment: int
    docs: np.ndarray
    scores: np.ndarray | None = None


def _best_across(found: list[_Found], n: int) -> list[_Found]:
    """The best n chunks by score over all segments (one budget, not n per segment)."""
    total = sum(len(f.docs) for f in found)
    if total <= n:
        return found
    scores = np.concatenate([f.scores for f in found])
    cut = np.partition(-scores, n - 1)[n - 1]  # the n-th best score, negated
    # Every chunk above the cut is kept; ties at the cut fill what is left of n, the first
    # segments' first, as a stable sort would. (Counting the ties against each segment's share
    # as it came let a later segment's chunks above the cut overrun n: ties are common in
    # stage 2's int16 scores.)
    ties_left = n - int((-scores < cut).sum())
    kept = []
    for f in found:
        above = np.flatnonzero(-f.scores < cut)
        at = np.flatnonzero(-f.scores == cut)[:max(0, ties_left)]
        ties_left -= len(at)
        take = np.sort(np.concatenate([above, at]))
        if len(take):
            kept.append(_Found(f.segment, f.docs[take], f.scores[take]))
    return kept


def search_segments(segments: Sequence[Segment], codec: ResidualCodec, q: np.ndarray, plan: QueryPlan,
                    allowed: Sequence[np.ndarray | None], k: int,
                    params: SearchParams) -> list[tuple[float, int, int]]:
    """(score, segment number, local chunk number) of the best k allowed chunks of a snapshot.

    The three stages' budgets (candidates, rerank) are the snapshot's, shared by its segments:
    one codec encodes them all, so a chunk's estimates and centroid scores compare across
    segments. With a budget per segment, an index of six segments did six times the work of one
    segment of the same chunks; one shared budget, somewhat wider, is both faster and closer to
    exhaustive search (eval/bench_index.py --index; docs/benchmarks.md)."""
    live = []
    for s, (segment, mask) in enumerate(zip(segments, allowed)):
        n = segment.n_docs if mask is None else int(mask.sum())
        if n:
            live.append((s, segment, mask, n))
    if not live:
        return []
    if sum(n for *_, n in live) <= max(params.rerank, k):  # a selective filter: score them all exactly
        found = [_Found(s, np.arange(seg.n_docs) if mask is None else np.flatnonzero(mask))
                 for s, seg, mask, _ in live]
        return _exact_top(found, segments, codec, q, k)

    # Stage 1: candidates from probed centroids, estimated from those centroids alone. Probing
    # widens while all segments together yield under the probing target (sparse lists, filters).
    # Segments are looked up on all cores at once, each with its estimates (wasted only when
    # the probing widens, or when all candidates survive, both cheap: few candidates).
    nprobe = min(params.nprobe, plan.max_probe)
    while True:
        probed, token_lists, token_scores = plan.token_probes(nprobe)
        missing = plan.unprobed_estimate(nprobe)

        def lookup(item: tuple, probed=probed, token_lists=token_lists, token_scores=token_scores,
                   missing=missing) -> _Found:  # this round's probes, bound as defaults
            s, segment, mask, _ = item
            list_docs, list_centroid = segment.ivf_lookup(probed)  # list by list, in probed's order
            list_starts = np.append(np.searchsorted(list_centroid, probed), len(list_docs))
            return _Found(s, *kernels.probed_estimates(list_docs, list_starts, token_lists, token_scores, missing,
                                                       mask, segment.n_docs))

        found = [f for f in kernels.parallel_map(lookup, live, [n for *_, n in live]) if len(f.docs)]
        n_found = sum(len(f.docs) for f in found)
        if n_found >= params.probe_target or nprobe >= plan.max_probe:
            break
        nprobe = min(2 * nprobe, plan.max_probe)
    if not found:
        return []
    found = _best_across(found, params.candidates)

    # Stage 2: centroid interaction over every token of the candidates, with pruning.
    if sum(len(f.docs) for f in found) > params.rerank:
        scores = kernels.centroid_interaction_each(plan.table, [
            (segments[f.segment].codes, *_bounds(segments[f.segment], f.docs)) for f in found])
        for f, f_scores in zip(found, scores):
            f.scores = f_scores
        found = _best_across(found, params.rerank)

    # Stage 3: exact MaxSim on decompressed vectors.
    return _exact_top(found, segments, codec, q, k)


def _exact_top(found: list[_Found], segments: Sequence[Segment], codec: ResidualCodec, q: np.ndarray,
               k: int) -> list[tuple[float, int, int]]:
    jobs = []
    for f in found:
        segment = segments[f.segment]
        jobs.append((segment.codes, segment.residuals, *_bounds(segment, f.docs)))
    out = []
    for f, scores in zip(found, kernels.exact_maxsim_each(q, codec.centroids, codec.byte_table, jobs)):
        out.extend(zip(scores.tolist(), [f.segment] * len(f.docs), f.docs.tolist()))
    out.sort(key=lambda t: -t[0])
    return out[:k]


def exhaustive_segment(segment: Segment, codec: ResidualCodec, q: np.ndarray, allowed: np.ndarray | None,
                       k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact MaxSim against every allowed chunk (decompressed): no candidate pruning."""
    docs = np.arange(segment.n_docs) if allowed is None else np.flatnonzero(allowed)
    if len(docs) == 0:
        return np.empty(0, np.int64), np.empty(0, np.float32)
    return _top(exact_scores(segment, codec, q, docs), docs, k)
