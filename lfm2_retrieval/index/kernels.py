"""Compiled (numba) loops for the two scoring stages of a search that touch every token of
many chunks.

In numpy and torch each of these stages is several passes over arrays of tokens x dim or
tokens x query tokens: gather the codes, gather rows of centroid scores, decompress into a new
array, normalise, multiply, scatter-max. Each pass reads and writes megabytes for a few
operations per element, so the stages are bound by memory traffic and per-call overhead, not
arithmetic. Here each token is read once and everything happens in registers and L1:

- centroid_interaction: PLAID's approximate score, sum over query tokens of the best
  centroid score among a chunk's tokens (pruned centroids score 0).
- exact_maxsim: decompress each token of a chunk (centroid + bucket weights, copied as 8-byte
  words), L2-normalise it, multiply the chunk's tokens by the query's (one small BLAS GEMM),
  keep the best per query token; a chunk's score is their sum.
- probe_order: each query token's best centroids, from one pass over the centroid scores
  (torch.topk along the short axis of a [K, nq] array took longer than the matrix product).
- probed_candidates / probed_estimates: stage 1's distinct chunks of the probed inverted lists
  and their estimates, without sorting the (chunk, centroid) pairs or gathering a row of scores
  for each of them.

All release the GIL (`nogil`), so concurrent searches run on separate cores; the scoring
stages take chunks as (start, end) token ranges of one segment. Compiled code is cached on disk after
the first call of a process (numba's `cache=True`).
"""

from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np

_OPTIONS = dict(nogil=True, cache=True, fastmath=True, boundscheck=False, error_model="numpy")


@numba.njit(**_OPTIONS)
def _sum_of_best(best):  # pragma: no cover (compiled)
    """A chunk's score: its best score per query token, summed (0 for a chunk of no token)."""
    total = np.float32(0.0)
    for a in range(len(best)):
        if best[a] > -np.inf:
            total += best[a]
    return total


@numba.njit(**_OPTIONS)
def _centroid_interaction(scores, keep, codes, starts, ends, out):  # pragma: no cover (compiled)
    nq = scores.shape[1]
    zero = np.zeros(nq, np.float32)  # the row of a pruned centroid
    best = np.empty(nq, np.float32)
    for i in range(len(starts)):
        best[:] = -np.inf
        t = starts[i]
        # Four tokens per pass over the query axis: a branch-free max that vectorises, with a
        # quarter of the loads and stores of `best` (2.5x faster than one token per pass).
        while t + 3 < ends[i]:
            c0, c1, c2, c3 = codes[t], codes[t + 1], codes[t + 2], codes[t + 3]
            r0 = scores[c0] if keep[c0] else zero
            r1 = scores[c1] if keep[c1] else zero
            r2 = scores[c2] if keep[c2] else zero
            r3 = scores[c3] if keep[c3] else zero
            for a in range(nq):
                best[a] = max(best[a], max(max(r0[a], r1[a]), max(r2[a], r3[a])))
            t += 4
        while t < ends[i]:
            r0 = scores[codes[t]] if keep[codes[t]] else zero
            for a in range(nq):
                best[a] = max(best[a], r0[a])
            t += 1
        out[i] = _sum_of_best(best)


@numba.njit(**_OPTIONS)
def _exact_maxsim(q, centroids, table_words, codes, residuals, starts, ends, out):  # pragma: no cover (compiled)
    nq, dim = q.shape
    n_bytes = residuals.shape[1]
    words = table_words.shape[1]
    qt = np.ascontiguousarray(q.T)  # [dim, nq]: the chunk's tokens times it is one small GEMM
    longest = 1
    for i in range(len(starts)):
        longest = max(longest, ends[i] - starts[i])
    tokens = np.empty((longest, dim), np.float32)
    # A residual byte's bucket weights (2, 4 or 8 floats) are copied as one to four 8-byte
    # words: unpacking float by float was two thirds of this kernel's time.
    residual_words = np.empty(n_bytes * words, np.float64)
    residual = residual_words.view(np.float32)
    for i in range(len(starts)):
        n = ends[i] - starts[i]
        if n == 0:
            out[i] = 0.0
            continue
        for b in range(n):
            t = starts[i] + b
            if words == 1:  # nbits 4: a byte is one word (the inner loop below halved the speed)
                for j in range(n_bytes):
                    residual_words[j] = table_words[residuals[t, j], 0]
            else:
                for j in range(n_bytes):
                    for w in range(words):
                        residual_words[j * words + w] = table_words[residuals[t, j], w]
            centroid = centroids[codes[t]]
            norm2 = np.float32(0.0)
            for d in range(dim):
                x = centroid[d] + residual[d]
                tokens[b, d] = x
                norm2 += x * x
            inv = np.float32(1.0) / np.float32(math.sqrt(max(norm2, np.float32(1e-24))))
            for d in range(dim):
                tokens[b, d] *= inv
        sims = np.dot(tokens[:n], qt)  # BLAS (through SciPy): [n, nq]
        total = np.float32(0.0)
        for a in range(nq):
            best = sims[0, a]
            for b in range(1, n):
                best = max(best, sims[b, a])
            total += best
        out[i] = total


@numba.njit(**_OPTIONS)
def _probe_order(scores, first, threshold, top, order, keep):  # pragma: no cover (compiled)
    """One pass over the [block, nq] scores of centroids first.. : each query token's best
    centroids so far (top/order, best first, updated in place) and whether each centroid's
    best score reaches the pruning threshold."""
    n_centroids, nq = scores.shape
    nprobe = top.shape[1]
    for c in range(n_centroids):
        row_best = -np.inf
        for a in range(nq):
            x = scores[c, a]
            if x > row_best:
                row_best = x
            if x > top[a, nprobe - 1]:  # insert, keeping the row sorted
                j = nprobe - 1
                while j > 0 and top[a, j - 1] < x:
                    top[a, j] = top[a, j - 1]
                    order[a, j] = order[a, j - 1]
                    j -= 1
                top[a, j] = x
                order[a, j] = first + c
        keep[c] = row_best >= threshold


@numba.njit(**_OPTIONS)
def _probed_candidates(pair_docs, allowed, slot, docs):  # pragma: no cover (compiled)
    """Distinct allowed chunks of the (chunk, centroid) pairs, ascending, into docs (returns
    how many); slot[chunk] := its place there. Marks, then one scan of the segment: no sort."""
    for p in range(len(pair_docs)):
        d = pair_docs[p]
        if len(allowed) == 0 or allowed[d]:
            slot[d] = 0
    n = 0
    for d in range(len(slot)):
        if slot[d] == 0:
            slot[d] = n
            docs[n] = d
            n += 1
    return n


@numba.njit(**_OPTIONS)
def _probed_estimates(scores, pair_docs, pair_cent, slot, n_docs, floor, out):  # pragma: no cover (compiled)
    """Each candidate's best probed centroid score per query token (floor[a] at worst), summed."""
    nq = scores.shape[1]
    best = np.empty((n_docs, nq), np.float32)
    for i in range(n_docs):
        best[i, :] = floor
    for p in range(len(pair_docs)):
        i = slot[pair_docs[p]]
        if i < 0:
            continue
        row = scores[pair_cent[p]]
        for a in range(nq):
            best[i, a] = max(best[i, a], row[a])
    for i in range(n_docs):
        total = np.float32(0.0)
        for a in range(nq):
            total += best[i, a]
        out[i] = total


# Single-query latency: split a stage's chunks across cores. The kernels hold no GIL, so
# plain threads run them in parallel; under concurrent queries the split costs little.
_WORKERS = max(1, min(4, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1))
_POOL = ThreadPoolExecutor(max_workers=_WORKERS, thread_name_prefix="lfm2-search-kernel") if _WORKERS > 1 else None
_MIN_SPLIT_TOKENS = 2048  # below this a split costs more than it saves


def _run_split(kernel, args: tuple, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    out = np.empty(len(starts), dtype=np.float32)
    n_tokens = int((ends - starts).sum()) if len(starts) else 0
    parts = min(_WORKERS, max(1, n_tokens // _MIN_SPLIT_TOKENS))
    if parts <= 1 or _POOL is None:
        kernel(*args, starts, ends, out)
        return out
    bounds = np.linspace(0, len(starts), parts + 1).astype(np.int64)
    futures = [_POOL.submit(kernel, *args, starts[a:b], ends[a:b], out[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]
    for f in futures:
        f.result()
    return out


def centroid_interaction(scores: np.ndarray, keep: np.ndarray, codes: np.ndarray, starts: np.ndarray,
                         ends: np.ndarray) -> np.ndarray:
    """Approximate MaxSim per chunk from centroid scores ([K, nq] float32, C order) of the tokens
    in [starts[i], ends[i]); a centroid not in `keep` ([K] bool) scores 0 (PLAID's pruning)."""
    return _run_split(_centroid_interaction, (scores, keep, codes), starts, ends)


def probe_order(scores: np.ndarray, nprobe: int, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """([nq, nprobe] best centroids of each query token, best first; [K] keep mask)."""
    order, keep, probe = new_probe(scores.shape[0], scores.shape[1], nprobe, threshold)
    probe(scores, 0)
    return order, keep


def new_probe(n_centroids: int, nq: int, nprobe: int, threshold: float):
    """(order, keep, probe): probe(block_scores, first) folds the scores of centroids first..
    into order ([nq, nprobe]) and keep ([K]), so that a query plan can scan each block of
    centroid scores while it is still in cache, right after computing it."""
    nprobe = min(nprobe, n_centroids)
    order = np.zeros((nq, nprobe), dtype=np.int64)
    keep = np.empty(n_centroids, dtype=np.bool_)
    top = np.full((nq, nprobe), -np.inf, dtype=np.float32)
    threshold = np.float32(threshold)

    def probe(block: np.ndarray, first: int) -> None:
        _probe_order(block, first, threshold, top, order, keep[first:first + len(block)])

    return order, keep, probe


def exact_maxsim(q: np.ndarray, centroids: np.ndarray, table: np.ndarray, codes: np.ndarray,
                 residuals: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """MaxSim per chunk of q ([nq, dim]) against its decompressed, normalised tokens.

    table: the codec's [256, dims per byte] bucket weights of every packed byte value."""
    table_words = np.ascontiguousarray(table, dtype=np.float32).view(np.float64)  # [256, dims per byte / 2]
    return _run_split(_exact_maxsim, (np.ascontiguousarray(q, dtype=np.float32), centroids, table_words, codes,
                                      residuals), starts, ends)


def probed_candidates(pair_docs: np.ndarray, allowed: np.ndarray | None, n_chunks: int) -> tuple[np.ndarray, np.ndarray]:
    """(distinct allowed chunks of the pairs, ascending; slot of every chunk of the segment in
    that array, -1 where absent). Marks in an array the size of the segment, where
    np.unique(return_inverse) sorted every pair and a mask kept a copy of them."""
    slot = np.full(n_chunks, -1, dtype=np.int64)
    docs = np.empty(n_chunks, dtype=np.int64)
    n = _probed_candidates(pair_docs, np.empty(0, dtype=np.bool_) if allowed is None else allowed, slot, docs)
    return docs[:n], slot


def probed_estimates(scores: np.ndarray, pair_docs: np.ndarray, pair_cent: np.ndarray, slot: np.ndarray,
                  n_docs: int, floor: np.ndarray | None = None) -> np.ndarray:
    """Stage 1's estimate of the n_docs candidates: sum_q max over the chunk's probed centroids of
    scores[c, q] (a chunk appears in a pair for each probed centroid it has a token at), and
    floor[q] (default 0) for a query token none of whose probed centroids the chunk has."""
    out = np.empty(n_docs, dtype=np.float32)
    floor = np.zeros(scores.shape[1], np.float32) if floor is None else np.ascontiguousarray(floor, np.float32)
    _probed_estimates(scores, pair_docs, pair_cent, slot, n_docs, floor, out)
    return out
