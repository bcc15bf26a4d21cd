"""PLAID-style search over compressed segments, and exact exhaustive MaxSim.

For one query (token vectors Q, [nq, dim]) and one segment, in three stages of narrowing work:

1. Candidates. Centroid scores S = Q C^T. Each query token probes its `nprobe` best centroids;
   the inverted file gives the documents with a token at any probed centroid. Each candidate
   gets a cheap bound from the probed centroids alone: sum_q max_{c probed, c in doc} S[q, c].
   The best `candidates` survive.
2. Centroid interaction (PLAID). Every token of a surviving document is stood in for by its
   centroid: sum_q max_t S[q, code[t]], with centroid pruning (centroids whose best score
   over the query is below `centroid_threshold` count as 0). The best `rerank` survive.
3. Exact MaxSim on the decompressed vectors of those documents; the top k are returned.

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
            return cls(nprobe=4, candidates=2048, rerank=256, centroid_threshold=0.45)
        if k <= 100:
            return cls(nprobe=6, candidates=4096, rerank=max(1024, 4 * k), centroid_threshold=0.4)
        return cls(nprobe=8, candidates=max(8192, 8 * k), rerank=max(4096, 4 * k), centroid_threshold=0.35)


def _segment_max(values: torch.Tensor, counts: np.ndarray) -> torch.Tensor:
    """Max over consecutive runs of columns: values [nq, n_tok], runs of `counts` -> [nq, n_runs]."""
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    return torch.from_numpy(np.maximum.reduceat(values.numpy(), starts, axis=1))


def exact_scores(segment: Segment, codec: ResidualCodec, q: torch.Tensor, docs: np.ndarray,
                 chunk_tokens: int = 1 << 18) -> np.ndarray:
    """MaxSim of q against the decompressed vectors of `docs`, in chunks of about chunk_tokens."""
    scores = np.empty(len(docs), dtype=np.float32)
    start = 0
    lengths = segment.doc_offsets[docs + 1].astype(np.int64) - segment.doc_offsets[docs]
    while start < len(docs):
        stop = start + max(1, int(np.searchsorted(np.cumsum(lengths[start:]), chunk_tokens)))
        stop = min(stop, len(docs))
        positions, counts = segment.token_ranges(docs[start:stop])
        vectors = codec.decompress(segment.codes[positions], segment.residuals[positions])
        sims = q @ torch.from_numpy(vectors).T
        scores[start:stop] = _segment_max(sims, counts).sum(0).numpy()
        start = stop
    return scores


def _top(scores: np.ndarray, docs: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    if len(docs) > n:
        keep = np.argpartition(-scores, n - 1)[:n]
        docs, scores = docs[keep], scores[keep]
    order = np.argsort(-scores, kind="stable")
    return docs[order], scores[order]


def search_segment(segment: Segment, codec: ResidualCodec, q: torch.Tensor, centroid_scores: torch.Tensor,
                   allowed: np.ndarray | None, k: int, params: SearchParams) -> tuple[np.ndarray, np.ndarray]:
    """(local document numbers, scores) of the best k allowed documents of one segment."""
    if segment.n_docs == 0:
        return np.empty(0, np.int64), np.empty(0, np.float32)
    n_allowed = segment.n_docs if allowed is None else int(allowed.sum())
    if n_allowed == 0:
        return np.empty(0, np.int64), np.empty(0, np.float32)
    if n_allowed <= max(params.rerank, k):
        docs = np.arange(segment.n_docs) if allowed is None else np.flatnonzero(allowed)
        return _top(exact_scores(segment, codec, q, docs), docs, k)

    # Stage 1: candidates from probed centroids, scored by those centroids alone.
    nprobe = min(params.nprobe, codec.num_centroids)
    probed = torch.topk(centroid_scores, nprobe, dim=1).indices.unique().numpy()
    pair_docs, pair_cent = segment.ivf_lookup(probed)
    if allowed is not None:
        ok = allowed[pair_docs]
        pair_docs, pair_cent = pair_docs[ok], pair_cent[ok]
    if len(pair_docs) == 0:
        return np.empty(0, np.int64), np.empty(0, np.float32)
    docs, inverse = np.unique(pair_docs, return_inverse=True)
    if len(docs) > params.candidates:
        nq = centroid_scores.shape[0]
        bound = torch.zeros(nq, len(docs))
        bound.scatter_reduce_(1, torch.from_numpy(inverse).expand(nq, -1),
                              centroid_scores[:, torch.from_numpy(pair_cent)], "amax", include_self=True)
        docs, _ = _top(bound.sum(0).numpy(), docs, params.candidates)

    # Stage 2: centroid interaction over every token of the candidates, with pruning.
    if len(docs) > params.rerank:
        pruned = torch.where(centroid_scores.max(0).values >= params.centroid_threshold, centroid_scores, 0.0)
        positions, counts = segment.token_ranges(docs)
        codes = torch.from_numpy(segment.codes[positions].astype(np.int64))
        approx = _segment_max(pruned[:, codes], counts).sum(0).numpy()
        docs, _ = _top(approx, docs, params.rerank)

    # Stage 3: exact MaxSim on decompressed vectors.
    return _top(exact_scores(segment, codec, q, docs), docs, k)


def exhaustive_segment(segment: Segment, codec: ResidualCodec, q: torch.Tensor, allowed: np.ndarray | None,
                       k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact MaxSim against every allowed document (decompressed): no candidate pruning."""
    docs = np.arange(segment.n_docs) if allowed is None else np.flatnonzero(allowed)
    if len(docs) == 0:
        return np.empty(0, np.int64), np.empty(0, np.float32)
    return _top(exact_scores(segment, codec, q, docs), docs, k)
