"""PLAID-style search over compressed segments, and exact exhaustive MaxSim.

For one query (token vectors Q, [nq, dim]) and one segment, in three stages of narrowing work:

1. Candidates. Centroid scores S = Q C^T. Each query token probes its `nprobe` best centroids
   (doubled while that yields under half of `candidates` documents, as with selective filters);
   the inverted file gives the documents with a token at any probed centroid. Each candidate
   gets a cheap bound from the probed centroids alone: sum_q max_{c probed, c in doc} S[q, c].
   The best `candidates` survive.
2. Centroid interaction (PLAID). Every token of a surviving document is stood in for by its
   centroid: sum_q max_t S[q, code[t]], with centroid pruning (centroids whose best score
   over the query is below `centroid_threshold` count as 0). The best `rerank` survive.
3. Exact MaxSim on the decompressed (and L2-normalised) vectors of those documents; the top
   k are returned.

Filters and deletions arrive as a boolean mask over the segment's documents and remove
documents before stage 1's scoring. When the mask leaves no more than `rerank` documents,
they are all scored exactly (a selective filter never loses results to pruning).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .codec import ResidualCodec
from .segment import Segment


@dataclass(frozen=True)
class SearchParams:
    nprobe: int
    candidates: int
    rerank: int
    centroid_threshold: float = 0.4

    @classmethod
    def for_k(cls, k: int) -> "SearchParams":
        """Defaults that widen with k (as PLAID's do), tuned on eval/bench_index.py."""
        if k <= 10:
            return cls(nprobe=12, candidates=2048, rerank=512, centroid_threshold=0.3)
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
    """sims [n_tok, nq] for documents of `counts` consecutive tokens -> MaxSim score per document.

    A scatter-max into [n_docs, nq] (torch): 4x faster here than numpy's maximum.reduceat,
    which does not vectorise over the query axis, and than torch.segment_reduce.
    """
    nq = sims.shape[1]
    owner = torch.from_numpy(np.repeat(np.arange(len(counts)), counts))
    best = torch.full((len(counts), nq), -torch.inf)
    best.scatter_reduce_(0, owner[:, None].expand(-1, nq), torch.from_numpy(sims), "amax", include_self=True)
    return best.sum(1).numpy()


def exact_scores(segment: Segment, codec: ResidualCodec, q: np.ndarray, docs: np.ndarray,
                 chunk_tokens: int = 1 << 18) -> np.ndarray:
    """MaxSim of q against the decompressed vectors of `docs`, in chunks of about chunk_tokens."""
    scores = np.empty(len(docs), dtype=np.float32)
    start = 0
    lengths = segment.doc_offsets[docs + 1].astype(np.int64) - segment.doc_offsets[docs]
    while start < len(docs):
        stop = min(len(docs), start + max(1, int(np.searchsorted(np.cumsum(lengths[start:]), chunk_tokens))))
        positions, counts = segment.token_ranges(docs[start:stop])
        vectors = codec.decompress(np.take(segment.codes, positions), np.take(segment.residuals, positions, axis=0),
                                   normalize=True)
        scores[start:stop] = maxsim_per_doc(similarities(vectors, q), counts)
        start = stop
    return scores


def _top(scores: np.ndarray, docs: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    if len(docs) > n:
        keep = np.argpartition(-scores, n - 1)[:n]
        docs, scores = docs[keep], scores[keep]
    order = np.argsort(-scores, kind="stable")
    return docs[order], scores[order]


def search_segment(segment: Segment, codec: ResidualCodec, q: np.ndarray, centroid_scores: np.ndarray,
                   allowed: np.ndarray | None, k: int, params: SearchParams) -> tuple[np.ndarray, np.ndarray]:
    """(local document numbers, scores) of the best k allowed documents of one segment.

    centroid_scores: [K, nq], the similarity of every centroid to every query token.
    """
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
    nprobe = min(params.nprobe, codec.num_centroids)
    while True:
        probed = torch.topk(torch.from_numpy(centroid_scores), nprobe, dim=0, sorted=False).indices.unique().numpy()
        pair_docs, pair_cent = segment.ivf_lookup(probed)
        if allowed is not None:
            ok = allowed[pair_docs]
            pair_docs, pair_cent = pair_docs[ok], pair_cent[ok]
        docs, inverse = np.unique(pair_docs, return_inverse=True)
        if len(docs) >= params.candidates // 2 or nprobe >= min(codec.num_centroids, 16 * params.nprobe):
            break
        nprobe = min(2 * nprobe, codec.num_centroids)
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
        keep = centroid_scores.max(axis=1) >= params.centroid_threshold
        pruned = centroid_scores * keep[:, None]
        positions, counts = segment.token_ranges(docs)
        approx = maxsim_per_doc(np.take(pruned, np.take(segment.codes, positions), axis=0), counts)
        docs, _ = _top(approx, docs, params.rerank)

    # Stage 3: exact MaxSim on decompressed vectors.
    return _top(exact_scores(segment, codec, q, docs), docs, k)


def exhaustive_segment(segment: Segment, codec: ResidualCodec, q: np.ndarray, allowed: np.ndarray | None,
                       k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact MaxSim against every allowed document (decompressed): no candidate pruning."""
    docs = np.arange(segment.n_docs) if allowed is None else np.flatnonzero(allowed)
    if len(docs) == 0:
        return np.empty(0, np.int64), np.empty(0, np.float32)
    return _top(exact_scores(segment, codec, q, docs), docs, k)
