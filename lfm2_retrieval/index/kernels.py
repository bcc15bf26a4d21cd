"""Compiled (numba) loops over many tokens: the stages of a search, and compression's packing.

In numpy and torch each of these stages is several passes over arrays of tokens x dim or
tokens x query tokens: gather the codes, gather rows of centroid scores, decompress into a new
array, normalise, multiply, scatter-max. Each pass reads and writes megabytes for a few
operations per element, so the stages are bound by memory traffic and per-call overhead, not
arithmetic. Here each token is read once and everything happens in registers and L1:

- centroid_interaction: PLAID's approximate score, sum over query tokens of the best
  centroid score among a chunk's tokens (pruned centroids score 0), from int16 scores.
- exact_maxsim: decompress each token (centroid + bucket weights, copied as 8-byte words) into
  a block of up to EXACT_BLOCK tokens of whole chunks, multiply the block by the query (one BLAS
  product), scale each row by its token's inverse norm and keep each chunk's best per query
  token; a chunk's score is their sum.
- probe_order: each query token's best centroids, from one pass over the centroid scores, a
  part a core (torch.topk along the short axis of a [K, nq] array took longer than the matrix
  product), writing stage 2's int16 table in the same pass.
- probed_estimates: stage 1's chunks of the probed inverted lists and their estimates, each
  query token reading its own lists once, best first (no sort of the (chunk, centroid) pairs,
  no running maxima per chunk and query token).
- pack_residuals: compression's bucket of every residual value and its bit packing, in one pass
  over the tokens (numpy's searchsorted, subtraction and shifts were a third of an index build).

All release the GIL (`nogil`), so concurrent searches run on separate cores. The scoring
stages take chunks as (start, end) token ranges of a segment; their `_each` forms take every
segment's at once and split them across the cores as one piece of work. Compiled code is cached
on disk after the first call of a process (numba's `cache=True`).
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np


def _numba_without_cffi_support() -> None:
    """Where cffi is installed, numba's first compiled call builds its cffi typing support, and
    that parses C declarations with pycparser: 0.13 s of every process's first search, for
    nothing (no kernel calls a cffi function). numba loads that support once, as "not
    available", if `import cffi` fails while it does; cffi itself stays importable afterwards.
    A process that already loaded numba's cffi support keeps it."""
    import sys

    if "numba.core.typing.cffi_utils" in sys.modules:
        return
    saved = sys.modules.get("cffi")
    sys.modules["cffi"] = None  # makes `import cffi` raise ImportError
    try:
        import numba.core.typing.cffi_utils  # noqa: F401
    finally:
        if saved is None:
            del sys.modules["cffi"]
        else:
            sys.modules["cffi"] = saved


_numba_without_cffi_support()

_OPTIONS = dict(nogil=True, cache=True, fastmath=True, boundscheck=False, error_model="numpy")


def _load_scipy_cython_blas() -> None:
    """Loads scipy.linalg.cython_blas, the module numba's compiled np.dot takes its BLAS from, as
    numba's runtime asks for it: by its full name, from sys.modules. Imported the usual way it
    runs scipy.linalg's __init__ first (LAPACK wrappers and more: 0.17 s of a shell search), which
    the kernels never use; the extension alone loads in 12 ms. A later `import scipy.linalg` still
    imports the package as usual (`from scipy.linalg import cython_blas` finds this module)."""
    import importlib.util
    import sys

    name = "scipy.linalg.cython_blas"
    if name in sys.modules or "scipy.linalg" in sys.modules:
        import scipy.linalg.cython_blas
        return
    try:
        folder = importlib.util.find_spec("scipy.linalg").submodule_search_locations[0]  # found, not run
        found = [p for p in os.listdir(folder) if p.startswith("cython_blas.") and p.endswith((".so", ".pyd"))]
        spec = importlib.util.spec_from_file_location(name, os.path.join(folder, found[0]))
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        if not hasattr(module, "__pyx_capi__"):
            raise ImportError(f"{name} exports no Cython C API")
        sys.modules[name] = module
    except Exception:  # an unexpected SciPy layout: the usual import
        sys.modules.pop(name, None)
        import scipy.linalg.cython_blas  # noqa: F401


def _scipy_openblas_loaded() -> bool | None:
    """Whether SciPy's own OpenBLAS (scipy.libs/libscipy_openblas*) is in this process yet, from
    the process's memory map; None where there is no /proc to ask."""
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as f:
            return any("scipy.libs" in line and "openblas" in line for line in f)
    except OSError:
        return None


def _single_threaded_scipy_blas() -> None:
    """numba's np.dot calls SciPy's OpenBLAS. Left to itself, OpenBLAS threads a product of a
    block of tokens, and its threads spin on after each one, taking the cores from the kernel
    threads and torch: a search took twice as long. The kernels split the work themselves.
    OpenBLAS reads OPENBLAS_NUM_THREADS once, when it is loaded: where loading cython_blas is what
    loads SciPy's OpenBLAS, the variable set for that moment does it. Where SciPy's BLAS is
    loaded already, threadpoolctl sets it (it scans every loaded library: 0.16 s of a shell search)."""
    if _scipy_openblas_loaded() is False:
        saved = os.environ.get("OPENBLAS_NUM_THREADS")
        os.environ["OPENBLAS_NUM_THREADS"] = "1"
        try:
            _load_scipy_cython_blas()
        finally:
            if saved is None:
                del os.environ["OPENBLAS_NUM_THREADS"]
            else:
                os.environ["OPENBLAS_NUM_THREADS"] = saved
        return
    _load_scipy_cython_blas()
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


# Stage 2 reads centroid scores as int16, score * TABLE_SCALE rounded (pruned centroids 0): the
# table of a query is [K, nq], 16 MB in float32 at 131k centroids and 32 query tokens, and its
# rows are gathered at random, one a token, so it is bound by cache misses; in int16 it is half
# the size and a max over 16 lanes a vector instead of 8. A score moves by at most 1.5e-5 a
# query token (a ranking stage; the exact stage rescores the survivors), and the gather is about
# nine times faster once the table fits the last-level cache.
TABLE_SCALE = 32767


@numba.njit(**_OPTIONS)
def _centroid_interaction(table, codes, starts, ends, out):  # pragma: no cover (compiled)
    nq = table.shape[1]
    best = np.empty(nq, np.int16)
    for i in range(len(starts)):
        best[:] = -32768  # below every entry (they are clipped to +-TABLE_SCALE): no token seen
        t = starts[i]
        # Four tokens per pass over the query axis: a branch-free max that vectorises, with a
        # quarter of the loads and stores of `best` (2.5x faster than one token per pass).
        while t + 3 < ends[i]:
            r0, r1, r2, r3 = table[codes[t]], table[codes[t + 1]], table[codes[t + 2]], table[codes[t + 3]]
            for a in range(nq):
                best[a] = max(best[a], max(max(r0[a], r1[a]), max(r2[a], r3[a])))
            t += 4
        while t < ends[i]:
            r0 = table[codes[t]]
            for a in range(nq):
                best[a] = max(best[a], r0[a])
            t += 1
        total = np.int32(0)
        for a in range(nq):
            if best[a] > -32768:
                total += np.int32(best[a])
        out[i] = np.float32(total) / np.float32(TABLE_SCALE)


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
def _probe_order(scores, first, threshold, top, order, keep, table):  # pragma: no cover (compiled)
    """One pass over the [block, nq] scores of centroids first.. : each query token's best
    centroids so far (top/order, best first, updated in place), whether each centroid's best
    score reaches the pruning threshold, and (where `table` has rows) stage 2's int16 row of it."""
    n_centroids, nq = scores.shape
    nprobe = top.shape[1]
    with_table = table.shape[0] > 0
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
        if with_table:
            scale = np.float32(TABLE_SCALE) if keep[c] else np.float32(0.0)
            for a in range(nq):
                table[c, a] = np.int16(np.rint(min(max(row[a], np.float32(-1.0)), np.float32(1.0)) * scale))
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
def _token_gains(list_docs, list_starts, token_lists, gains, reached, gain):  # pragma: no cover (compiled)
    """For each query token in turn, its probed lists best first: a chunk first reached by the
    token in a list gains that list's gain; later lists of the token add nothing to it (they
    score no more). reached[chunk] is the last token (plus one) that reached it."""
    nq, nprobe = token_lists.shape
    for a in range(nq):
        for p in range(nprobe):
            g = gains[a, p]
            lst = token_lists[a, p]
            for e in range(list_starts[lst], list_starts[lst + 1]):
                d = list_docs[e]
                if reached[d] <= a:
                    reached[d] = a + 1
                    gain[d] += g


@numba.njit(**_OPTIONS)
def _reached_chunks(reached, gain, n_chunks, allowed, base, docs, estimates):  # pragma: no cover (compiled)
    """The allowed chunks some token reached, ascending, with their estimates; returns how many.
    Leaves reached and gain zero again, for the next search."""
    n = 0
    for d in range(n_chunks):
        if reached[d] > 0:
            if len(allowed) == 0 or allowed[d]:
                docs[n] = d
                estimates[n] = base + gain[d]
                n += 1
            reached[d] = 0
            gain[d] = 0.0
    return n


# Single-query latency: a stage's chunks, over all segments, are split across cores. The
# kernels hold no GIL, so plain threads run them in parallel; the calling thread runs one part
# itself. The split is per stage, not per segment: a hand-off to a pool thread costs about a
# quarter of a millisecond, which per segment would add up to more than a small stage's work.
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


@numba.njit(**_OPTIONS)
def _pack_residuals(vectors, codes, centroids, cutoffs, nbits, out):  # pragma: no cover (compiled)
    per_byte = 8 // nbits
    for t in range(vectors.shape[0]):
        c = codes[t]
        for b in range(out.shape[1]):
            byte = 0
            for j in range(per_byte):
                r = vectors[t, b * per_byte + j] - centroids[c, b * per_byte + j]
                bucket = 0  # np.searchsorted(cutoffs, r): how many cutoffs lie below r
                for cut in cutoffs:
                    bucket += cut < r
                byte = (byte << nbits) | bucket
            out[t, b] = byte


_PACK_ROWS = 1 << 15  # tokens a core packs per hand-off


def pack_residuals(vectors: np.ndarray, codes: np.ndarray, centroids: np.ndarray, cutoffs: np.ndarray,
                   nbits: int) -> np.ndarray:
    """[n, dim * nbits / 8] uint8: each value of vectors - centroids[codes] replaced by its bucket
    (the number of `cutoffs` below it), most significant bits first within a byte."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    cutoffs = np.ascontiguousarray(cutoffs, dtype=np.float32)
    out = np.empty((len(vectors), vectors.shape[1] * nbits // 8), dtype=np.uint8)
    blocks = [(a, min(a + _PACK_ROWS, len(vectors))) for a in range(0, len(vectors), _PACK_ROWS)]
    parallel_map(lambda ab: _pack_residuals(vectors[ab[0]:ab[1]], codes[ab[0]:ab[1]], centroids, cutoffs, nbits,
                                            out[ab[0]:ab[1]]), blocks, [b - a for a, b in blocks])
    return out


def centroid_interaction(table: np.ndarray, codes: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Approximate MaxSim per chunk of the tokens in [starts[i], ends[i]), from stage 2's int16
    centroid scores ([K, nq], C order; probe_order's `table`, pruned centroids 0)."""
    return centroid_interaction_each(table, [(codes, starts, ends)])[0]


def centroid_interaction_each(table: np.ndarray,
                              segments: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> list[np.ndarray]:
    """centroid_interaction for each segment's (codes, starts, ends), split across cores as one."""
    return _run_split(_centroid_interaction, [((table, codes), starts, ends) for codes, starts, ends in segments])


_MIN_SPLIT_CENTROIDS = 16384  # a probe scan of fewer is not worth a hand-off


def probe_order(scores: np.ndarray, nprobe: int, threshold: float,
                table: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """([nq, nprobe] best centroids of each query token, best first; [K] keep mask: a centroid's
    best score over the query reaches `threshold`). table ([K, nq] int16, optional) is filled
    in the same pass with stage 2's scores: round(score * TABLE_SCALE), 0 where not kept.
    Large codecs are scanned in a part a core, each part's best lists merged at the end."""
    n_centroids, nq = scores.shape
    nprobe = min(nprobe, n_centroids)
    keep = np.empty(n_centroids, dtype=np.bool_)
    no_table = np.empty((0, nq), dtype=np.int16)
    parts = min(_WORKERS, max(1, n_centroids // _MIN_SPLIT_CENTROIDS)) if _POOL is not None else 1
    bounds = np.linspace(0, n_centroids, parts + 1).astype(np.int64)

    def scan(part: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        first, end = part
        top = np.full((nq, nprobe), -np.inf, dtype=np.float32)
        order = np.zeros((nq, nprobe), dtype=np.int64)
        _probe_order(scores[first:end], first, np.float32(threshold), top, order, keep[first:end],
                     no_table if table is None else table[first:end])
        return top, order

    found = parallel_map(scan, list(zip(bounds[:-1], bounds[1:])), [1.0] * parts)
    if len(found) == 1:
        return found[0][1], keep
    top = np.concatenate([t for t, _ in found], axis=1)
    order = np.concatenate([o for _, o in found], axis=1)
    # Best first; between equal scores the lower centroid, as one scan would order them.
    best = np.lexsort((order, -top), axis=1)[:, :nprobe]
    return np.take_along_axis(order, best, axis=1), keep


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


def probed_estimates(list_docs: np.ndarray, list_starts: np.ndarray, token_lists: np.ndarray,
                     token_scores: np.ndarray, floor: np.ndarray, allowed: np.ndarray | None,
                     n_chunks: int) -> tuple[np.ndarray, np.ndarray]:
    """Stage 1: (the allowed chunks of the probed lists, ascending; their estimates).

    list_docs: the chunks of the probed inverted lists laid end to end, list l at
    list_starts[l]:list_starts[l + 1]; token_lists [nq, nprobe]: each query token's probed lists,
    best first, and token_scores the token's score of each. A chunk's estimate is, summed over
    query tokens, the best score of the token's own probed lists that hold the chunk, or
    floor[q] where none does (the missing-similarity estimate of XTR and WARP; floor is below
    every probed score). Each token reads its lists once, best first, and a chunk takes the
    first; no [chunks, nq] array of running maxima is kept (megabytes a query to fill, update
    and sum)."""
    floor = np.ascontiguousarray(floor, dtype=np.float32)
    gains = np.maximum(np.asarray(token_scores, np.float32) - floor[:, None], 0).astype(np.float32)
    reached, gain = _zeroed_scratch(n_chunks)
    _SCRATCH.dirty = True  # until _reached_chunks has zeroed them again
    _token_gains(list_docs, list_starts, np.ascontiguousarray(token_lists, dtype=np.int64), gains, reached, gain)
    docs = np.empty(n_chunks, dtype=np.int64)
    estimates = np.empty(n_chunks, dtype=np.float32)
    n = _reached_chunks(reached, gain, n_chunks, np.empty(0, dtype=np.bool_) if allowed is None else allowed,
                        np.float32(floor.sum()), docs, estimates)
    _SCRATCH.dirty = False
    return docs[:n], estimates[:n]


_SCRATCH = threading.local()


def _zeroed_scratch(n_chunks: int) -> tuple[np.ndarray, np.ndarray]:
    """This thread's stage-1 arrays (reached, gain) of at least n_chunks zeros. They are kept:
    fresh zeroed arrays for each segment of each search cost page faults every query, and
    _reached_chunks leaves them zero again. New ones if a search stopped half way (dirty)."""
    held = getattr(_SCRATCH, "arrays", None)
    if held is None or len(held[0]) < n_chunks or getattr(_SCRATCH, "dirty", False):
        held = (np.zeros(max(n_chunks, 1024), dtype=np.int32), np.zeros(max(n_chunks, 1024), dtype=np.float32))
        _SCRATCH.arrays = held
    return held
