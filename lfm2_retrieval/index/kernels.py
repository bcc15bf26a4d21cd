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
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np

_OPTIONS = dict(nogil=True, cache=True, fastmath=True, boundscheck=False, error_model="numpy")


def _single_threaded_scipy_blas() -> None:
    """numba's np.dot calls SciPy's OpenBLAS. Left to itself, OpenBLAS threads a product of a
    block of tokens, and its threads spin on after each one, taking the cores from the kernel
    threads and torch: a search took twice as long. The kernels split the work themselves."""
    import scipy.linalg.cython_blas  # noqa: F401 (loads SciPy's BLAS, to find it)
    from threadpoolctl import ThreadpoolController

    for lib in ThreadpoolController().lib_controllers:
        if lib.internal_api == "openblas" and "scipy" in os.path.basename(os.path.dirname(lib.filepath)):
            lib.set_num_threads(1)


_single_threaded_scipy_blas()


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


EXACT_BLOCK = 1024  # tokens decompressed before one matrix product (a 384 KB block at 96-d)


@numba.njit(**_OPTIONS)
def _exact_maxsim(q, centroids, table_words, codes, residuals, starts, ends, out):  # pragma: no cover (compiled)
    nq, dim = q.shape
    n_bytes = residuals.shape[1]
    words = table_words.shape[1]
    qt = np.ascontiguousarray(q.T)  # [dim, nq]
    longest = 1
    for i in range(len(starts)):
        longest = max(longest, ends[i] - starts[i])
    capacity = max(EXACT_BLOCK, longest)
    tokens = np.empty((capacity, dim), np.float32)
    inverse_norms = np.empty(capacity, np.float32)
    # A residual byte's bucket weights (2, 4 or 8 floats) are copied as one to four 8-byte
    # words: unpacking float by float was two thirds of this kernel's time.
    residual_words = np.empty(n_bytes * words, np.float64)
    residual = residual_words.view(np.float32)
    best = np.empty(nq, np.float32)
    first = 0
    while first < len(starts):
        # Whole chunks, up to a block of tokens, then one matrix product for all of them.
        last, n = first, 0
        while last < len(starts) and (last == first or n + ends[last] - starts[last] <= capacity):
            for t in range(starts[last], ends[last]):
                if words == 1:  # nbits 4: a byte is one word (the general loop halved the speed)
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
                    tokens[n, d] = x
                    norm2 += x * x
                inverse_norms[n] = np.float32(1.0) / np.float32(math.sqrt(max(norm2, np.float32(1e-24))))
                n += 1
            last += 1
        sims = np.dot(tokens[:n], qt)  # BLAS (through SciPy): [n, nq]
        row = 0
        for i in range(first, last):
            best[:] = -np.inf
            for _ in range(ends[i] - starts[i]):  # token-major: the max over query tokens vectorises
                scale = inverse_norms[row]
                for a in range(nq):
                    best[a] = max(best[a], sims[row, a] * scale)
                row += 1
            out[i] = _sum_of_best(best)
        first = last


@numba.njit(**_OPTIONS)
def _probe_order(scores, first, threshold, top, order, keep):  # pragma: no cover (compiled)
    """One pass over the [block, nq] scores of centroids first.. : each query token's best
    centroids so far (top/order, best first, updated in place) and whether each centroid's
    best score reaches the pruning threshold."""
    n_centroids, nq = scores.shape
    nprobe = top.shape[1]
    bar = np.empty(nq, np.float32)  # each token's entry bar (its nprobe-th best), contiguous
    for a in range(nq):
        bar[a] = top[a, nprobe - 1]
    for c in range(n_centroids):
        row = scores[c]
        row_best = np.float32(-np.inf)
        enters = 0
        for a in range(nq):  # branch-free, so it vectorises: few rows enter any token's list
            row_best = max(row_best, row[a])
            enters += row[a] > bar[a]
        keep[c] = row_best >= threshold
        if enters == 0:
            continue
        for a in range(nq):
            x = row[a]
            if x > bar[a]:  # insert, keeping the row sorted
                j = nprobe - 1
                while j > 0 and top[a, j - 1] < x:
                    top[a, j] = top[a, j - 1]
                    order[a, j] = order[a, j - 1]
                    j -= 1
                top[a, j] = x
                order[a, j] = first + c
                bar[a] = top[a, nprobe - 1]


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


# Single-query latency: a stage's chunks, over all segments, are split across cores. The
# kernels hold no GIL, so plain threads run them in parallel; the calling thread runs one part
# itself. The split is per stage, not per segment: one hand-off to a pool thread costs about a
# quarter of a millisecond, so six segments split one by one spent 3 ms a query in hand-offs.
_WORKERS = max(1, min(4, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1))
_POOL = ThreadPoolExecutor(max_workers=_WORKERS, thread_name_prefix="lfm2-search-kernel") if _WORKERS > 1 else None
_MIN_SPLIT_TOKENS = 2048  # below this a split costs more than it saves


def parallel_map(fn, items: Sequence, weights: Sequence[float]) -> list:
    """[fn(item) for item in items], the items dealt to the cores in groups of about equal weight
    (the heaviest first, each to the lightest group); the calling thread runs one group."""
    groups = min(_WORKERS, len(items)) if _POOL is not None else 1
    if groups <= 1:
        return [fn(item) for item in items]
    load, members = [0.0] * groups, [[] for _ in range(groups)]
    for i in sorted(range(len(items)), key=lambda i: -weights[i]):
        g = load.index(min(load))
        load[g] += weights[i]
        members[g].append(i)
    out = [None] * len(items)

    def run(group: list[int]) -> None:
        for i in group:
            out[i] = fn(items[i])

    futures = [_POOL.submit(run, group) for group in members[1:] if group]
    run(members[0])
    for f in futures:
        f.result()
    return out


def _run_split(kernel, jobs: Sequence[tuple[tuple, np.ndarray, np.ndarray]]) -> list[np.ndarray]:
    """kernel(*args, starts, ends, out) for every (args, starts, ends) job (one a segment), with
    all jobs' chunks cut into parts of about equal tokens, one a core."""
    outs = [np.empty(len(starts), dtype=np.float32) for _, starts, _ in jobs]
    tokens = [ends - starts for _, starts, ends in jobs]
    total = sum(int(t.sum()) for t in tokens)
    parts = min(_WORKERS, max(1, total // _MIN_SPLIT_TOKENS)) if _POOL is not None else 1
    if parts <= 1:
        for (args, starts, ends), out in zip(jobs, outs):
            kernel(*args, starts, ends, out)
        return outs
    # Cut points in the jobs' chunks laid end to end, then each part's pieces of each job.
    job_first = np.concatenate([[0], np.cumsum([len(t) for t in tokens])])
    cuts = np.searchsorted(np.cumsum(np.concatenate(tokens)), total * np.arange(1, parts) / parts)
    bounds = np.concatenate([[0], cuts, [job_first[-1]]])
    pieces = []
    for a, b in zip(bounds[:-1], bounds[1:]):
        pieces.append([(j, max(a, job_first[j]) - job_first[j], min(b, job_first[j + 1]) - job_first[j])
                       for j in range(len(jobs)) if max(a, job_first[j]) < min(b, job_first[j + 1])])

    def run(part: list[tuple[int, int, int]]) -> None:
        for j, a, b in part:
            args, starts, ends = jobs[j]
            kernel(*args, starts[a:b], ends[a:b], outs[j][a:b])

    futures = [_POOL.submit(run, part) for part in pieces[1:]]
    run(pieces[0])
    for f in futures:
        f.result()
    return outs


def centroid_interaction(scores: np.ndarray, keep: np.ndarray, codes: np.ndarray, starts: np.ndarray,
                         ends: np.ndarray) -> np.ndarray:
    """Approximate MaxSim per chunk from centroid scores ([K, nq] float32, C order) of the tokens
    in [starts[i], ends[i]); a centroid not in `keep` ([K] bool) scores 0 (PLAID's pruning)."""
    return centroid_interaction_each(scores, keep, [(codes, starts, ends)])[0]


def centroid_interaction_each(scores: np.ndarray, keep: np.ndarray,
                              segments: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> list[np.ndarray]:
    """centroid_interaction for each segment's (codes, starts, ends), split across cores as one."""
    return _run_split(_centroid_interaction, [((scores, keep, codes), starts, ends) for codes, starts, ends in segments])


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
    return exact_maxsim_each(q, centroids, table, [(codes, residuals, starts, ends)])[0]


def exact_maxsim_each(q: np.ndarray, centroids: np.ndarray, table: np.ndarray,
                      segments: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]) -> list[np.ndarray]:
    """exact_maxsim for each segment's (codes, residuals, starts, ends), split across cores as one."""
    table_words = np.ascontiguousarray(table, dtype=np.float32).view(np.float64)  # [256, dims per byte / 2]
    q = np.ascontiguousarray(q, dtype=np.float32)
    return _run_split(_exact_maxsim, [((q, centroids, table_words, codes, residuals), starts, ends)
                                      for codes, residuals, starts, ends in segments])


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
