"""The compiled scoring loops of the index search, against plain numpy written from the
definitions (decompress, normalise, MaxSim; centroid interaction with pruning)."""

import os

import numpy as np
import pytest

from lfm2_retrieval.index import kernels
from lfm2_retrieval.index.codec import ResidualCodec


def unit(x):
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="module", params=[1, 2, 4])
def encoded(request):
    rng = np.random.default_rng(request.param)
    dim = 32
    vectors = unit(rng.standard_normal((3000, dim)))
    codec = ResidualCodec.train(vectors, num_centroids=64, nbits=request.param, seed=0)
    codes, packed = codec.compress(vectors)
    # Documents of 1 to 9 tokens: every remainder of the four-token blocks.
    lengths = rng.integers(1, 10, size=400)
    lengths = lengths[np.cumsum(lengths) <= len(vectors)]
    ends = np.cumsum(lengths).astype(np.int64)
    return codec, codes, packed, ends - lengths, ends


def reference_exact(codec, codes, packed, q, starts, ends):
    vectors = codec.decompress(codes, packed, normalize=True)
    return np.array([(vectors[s:e] @ q.T).max(0).sum() for s, e in zip(starts, ends)], dtype=np.float32)


def reference_interaction(scores, keep, codes, starts, ends):
    pruned = scores * keep[:, None]
    return np.array([pruned[codes[s:e]].max(0).sum() for s, e in zip(starts, ends)], dtype=np.float32)


def test_exact_maxsim_matches_decompression(encoded):
    codec, codes, packed, starts, ends = encoded
    q = unit(np.random.default_rng(7).standard_normal((5, codec.dim)))
    got = kernels.exact_maxsim(q, codec.centroids, codec.byte_table, codes, packed, starts, ends)
    np.testing.assert_allclose(got, reference_exact(codec, codes, packed, q, starts, ends), atol=1e-5)
    # A subset in any order, and nothing at all.
    pick = np.array([5, 0, 77, 3])
    np.testing.assert_allclose(kernels.exact_maxsim(q, codec.centroids, codec.byte_table, codes, packed,
                                                    starts[pick], ends[pick]),
                               reference_exact(codec, codes, packed, q, starts[pick], ends[pick]), atol=1e-5)
    assert len(kernels.exact_maxsim(q, codec.centroids, codec.byte_table, codes, packed, starts[:0], ends[:0])) == 0


def interaction_table(scores, threshold, nprobe=5):
    table = np.empty(scores.shape, np.int16)
    _, keep = kernels.probe_order(scores, nprobe, threshold, table)
    return table, keep


@pytest.mark.parametrize("threshold", [-1.0, 0.2, 0.6, 2.0])
def test_centroid_interaction_with_pruning(encoded, threshold):
    """Stage 2 reads int16 scores: each query token's best is off by at most half a step."""
    codec, codes, packed, starts, ends = encoded
    q = unit(np.random.default_rng(8).standard_normal((6, codec.dim)))
    scores = np.ascontiguousarray(codec.centroids @ q.T)
    table, keep = interaction_table(scores, threshold)
    assert np.array_equal(keep, scores.max(1) >= threshold)
    np.testing.assert_array_equal(table, np.where(keep[:, None], np.rint(scores * kernels.TABLE_SCALE), 0))
    got = kernels.centroid_interaction(table, codes, starts, ends)
    np.testing.assert_allclose(got, reference_interaction(scores, keep, codes, starts, ends),
                               atol=len(q) * 0.5 / kernels.TABLE_SCALE + 1e-6)
    assert kernels.centroid_interaction(table, codes, starts[:0], ends[:0]).shape == (0,)


def test_probe_order_is_each_query_tokens_best_centroids():
    scores = np.random.default_rng(3).standard_normal((500, 7)).astype(np.float32)
    order, _ = kernels.probe_order(scores, 9, 0.0)
    np.testing.assert_array_equal(order, np.argsort(-scores, axis=0)[:9].T)
    assert kernels.probe_order(scores, 10_000, 0.0)[0].shape == (7, 500)  # capped at K


def test_probe_order_in_parts_equals_one_pass(monkeypatch):
    """A scan a core, merged, gives one scan's lists, ties included (the lower centroid first)."""
    scores = np.round(np.random.default_rng(4).standard_normal((1000, 6)), 1).astype(np.float32)  # many ties
    table = np.empty(scores.shape, np.int16)
    whole, keep = kernels.probe_order(scores, 8, 0.5, table)
    monkeypatch.setattr(kernels, "_MIN_SPLIT_CENTROIDS", 300)
    if kernels._POOL is None:
        pytest.skip("one core: nothing is split")
    table_parts = np.empty(scores.shape, np.int16)
    order, keep_parts = kernels.probe_order(scores, 8, 0.5, table_parts)
    np.testing.assert_array_equal(order, whole)
    np.testing.assert_array_equal(keep_parts, keep)
    np.testing.assert_array_equal(table_parts, table)
    np.testing.assert_array_equal(whole, np.argsort(-scores, axis=0, kind="stable")[:8].T)


def test_stage_one_candidates_and_estimates():
    """The allowed chunks of the probed lists, and each one's estimate: per query token the best
    score of the token's own probed lists that hold the chunk, or the floor where none does."""
    rng = np.random.default_rng(5)
    n_chunks, nq, n_lists, nprobe = 50, 4, 12, 5
    lists = [np.unique(rng.integers(0, n_chunks, size=rng.integers(0, 15))) for _ in range(n_lists)]
    list_docs = np.concatenate(lists).astype(np.int64)
    list_starts = np.concatenate([[0], np.cumsum([len(x) for x in lists])]).astype(np.int64)
    token_lists = np.stack([rng.permutation(n_lists)[:nprobe] for _ in range(nq)])
    token_scores = -np.sort(-rng.random((nq, nprobe)), axis=1).astype(np.float32)  # best first
    token_scores[2] -= 0.9  # a token whose scores are partly below its floor: it gains nothing from them
    floor = np.array([0.05, 0.0, 0.2, -0.1], np.float32)
    allowed = rng.random(n_chunks) < 0.7
    for mask in (None, allowed):
        docs, got = kernels.probed_estimates(list_docs, list_starts, token_lists, token_scores, floor, mask, n_chunks)
        want = np.unique(list_docs if mask is None else list_docs[mask[list_docs]])
        np.testing.assert_array_equal(docs, want)
        ref = []
        for d in docs:
            total = 0.0
            for a in range(nq):
                held = [token_scores[a, p] for p in range(nprobe) if d in lists[token_lists[a, p]]]
                total += max([floor[a], *held])
            ref.append(total)
        np.testing.assert_allclose(got, ref, rtol=1e-6)


def test_split_across_threads_gives_the_same_scores(encoded, monkeypatch):
    codec, codes, packed, starts, ends = encoded
    q = unit(np.random.default_rng(9).standard_normal((4, codec.dim)))
    whole = kernels.exact_maxsim(q, codec.centroids, codec.byte_table, codes, packed, starts, ends)
    monkeypatch.setattr(kernels, "_MIN_SPLIT_TOKENS", 16)
    if kernels._POOL is None:
        pytest.skip("one core: nothing is split")
    split = kernels.exact_maxsim(q, codec.centroids, codec.byte_table, codes, packed, starts, ends)
    np.testing.assert_array_equal(whole, split)


def test_a_split_over_several_segments_gives_each_its_own_scores(encoded, monkeypatch):
    """One split for all segments' chunks: cut points fall inside segments, and every segment
    still gets its scores, in its order (as one call per segment gives them)."""
    codec, codes, packed, starts, ends = encoded
    q = unit(np.random.default_rng(10).standard_normal((5, codec.dim)))
    scores = np.random.default_rng(11).uniform(-1, 1, (codec.num_centroids, 5)).astype(np.float32)
    table, _ = interaction_table(scores, -1.0)
    pieces = [slice(0, 7), slice(7, 8), slice(8, 8), slice(8, len(starts))]
    alone = [kernels.exact_maxsim(q, codec.centroids, codec.byte_table, codes, packed, starts[p], ends[p])
             for p in pieces]
    ci_alone = [kernels.centroid_interaction(table, codes, starts[p], ends[p]) for p in pieces]
    monkeypatch.setattr(kernels, "_MIN_SPLIT_TOKENS", 16)
    if kernels._POOL is None:
        pytest.skip("one core: nothing is split")
    together = kernels.exact_maxsim_each(q, codec.centroids, codec.byte_table,
                                         [(codes, packed, starts[p], ends[p]) for p in pieces])
    ci_together = kernels.centroid_interaction_each(table, [(codes, starts[p], ends[p]) for p in pieces])
    for a, b, c, d in zip(alone, together, ci_alone, ci_together):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(c, d)


def test_parallel_map_keeps_the_items_order():
    items = list(range(11))
    assert kernels.parallel_map(lambda x: x * x, items, [1 + (i % 3) for i in items]) == [i * i for i in items]


def test_exact_maxsim_of_chunks_longer_than_a_block(encoded):
    """The exact kernel multiplies a block of whole chunks at a time; a chunk of more tokens than
    a block gets a block of its own size."""
    codec, codes, packed, _, _ = encoded
    q = unit(np.random.default_rng(12).standard_normal((3, codec.dim)))
    starts = np.array([0, 5, 1400], dtype=np.int64)
    ends = np.array([5, kernels.EXACT_BLOCK + 300, 2990], dtype=np.int64)
    np.testing.assert_allclose(kernels.exact_maxsim(q, codec.centroids, codec.byte_table, codes, packed, starts, ends),
                               reference_exact(codec, codes, packed, q, starts, ends), rtol=1e-5, atol=1e-6)


def test_stage_one_scratch_is_clean_for_the_next_search():
    """Stage 1 keeps its per-thread arrays between searches: each search leaves them zero, and a
    search that stopped half way (marked dirty) gets new ones."""
    list_docs = np.array([3, 7, 1, 7], dtype=np.int64)
    list_starts = np.array([0, 2, 4], dtype=np.int64)
    token_lists, token_scores = np.array([[0, 1]]), np.array([[0.9, 0.5]], np.float32)
    floor = np.array([0.1], np.float32)
    first = kernels.probed_estimates(list_docs, list_starts, token_lists, token_scores, floor, None, 10)
    again = kernels.probed_estimates(list_docs, list_starts, token_lists, token_scores, floor, None, 10)
    small = kernels.probed_estimates(list_docs[:2], list_starts[:2], token_lists[:, :1], token_scores[:, :1],
                                     floor, None, 8)
    for (docs, est), want in [(first, [1, 3, 7]), (again, [1, 3, 7])]:
        np.testing.assert_array_equal(docs, want)
        np.testing.assert_allclose(est, [0.5, 0.9, 0.9])
    np.testing.assert_array_equal(small[0], [3, 7])
    reached, gain = kernels._zeroed_scratch(10)
    reached[5], kernels._SCRATCH.dirty = 1, True  # as if a search had stopped between the kernels
    docs, _ = kernels.probed_estimates(list_docs, list_starts, token_lists, token_scores, floor, None, 10)
    np.testing.assert_array_equal(docs, [1, 3, 7])


def test_scipy_blas_runs_on_one_thread():
    """The exact kernel's products go through SciPy's OpenBLAS, which must not thread them: its
    spinning threads took the cores from the kernels' own (a search took twice as long)."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    scipy_blas = [i for i in threadpoolctl.threadpool_info()
                  if i["internal_api"] == "openblas" and "scipy" in i["filepath"].rsplit("/", 2)[-2]]
    assert scipy_blas and all(i["num_threads"] == 1 for i in scipy_blas)


def test_kernels_load_scipys_blas_without_scipy_linalg():
    """A fresh process: the kernels' BLAS products work with scipy.linalg's package never run
    (0.17 s of a shell search), and the package still imports and works afterwards."""
    import subprocess
    import sys

    code = (
        "import sys, numpy as np\n"
        "from lfm2_retrieval.index import kernels\n"
        "rng = np.random.default_rng(0)\n"
        "t = rng.standard_normal((9, 8)).astype(np.float32); q = rng.standard_normal((3, 8)).astype(np.float32)\n"
        "from lfm2_retrieval.index.codec import ResidualCodec\n"
        "v = rng.standard_normal((600, 8)).astype(np.float32); v /= np.linalg.norm(v, axis=1, keepdims=True)\n"
        "codec = ResidualCodec.train(v, num_centroids=16, nbits=2, seed=0); codes, packed = codec.compress(v)\n"
        "starts, ends = np.arange(0, 600, 6), np.arange(6, 606, 6)\n"
        "got = kernels.exact_maxsim(q, codec.centroids, codec.byte_table, codes, packed, starts, ends)\n"
        "d = codec.decompress(codes, packed, normalize=True)\n"
        "assert np.allclose(got, [(d[s:e] @ q.T).max(0).sum() for s, e in zip(starts, ends)], atol=1e-5)\n"
        "assert 'scipy.linalg' not in sys.modules and 'scipy.linalg.cython_blas' in sys.modules\n"
        # SciPy's OpenBLAS was told its one thread as it loaded: no scan of every library (0.16 s)
        "assert 'threadpoolctl' not in sys.modules and 'OPENBLAS_NUM_THREADS' not in __import__('os').environ\n"
        "import threadpoolctl\n"
        "assert [i['num_threads'] for i in threadpoolctl.threadpool_info() if 'scipy.libs' in i['filepath']] == [1]\n"
        "from scipy.linalg import cython_blas, blas\n"
        "assert np.allclose(blas.sgemm(1.0, t, q.T), t @ q.T, atol=1e-5)\n"
        "print('ok')\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert done.stdout.strip() == "ok", done.stderr


def test_the_package_sets_how_long_openmp_workers_spin():
    """lfm2_retrieval sets GOMP_SPINCOUNT before torch loads OpenMP, unless the user set it."""
    import subprocess
    import sys

    code = "import os, lfm2_retrieval; print(os.environ['GOMP_SPINCOUNT'])"
    env = {k: v for k, v in __import__("os").environ.items() if k != "GOMP_SPINCOUNT"}
    assert subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          check=True).stdout.strip() == "10000"
    assert subprocess.run([sys.executable, "-c", code], env={**env, "GOMP_SPINCOUNT": "123"}, capture_output=True,
                          text=True, check=True).stdout.strip() == "123"


@pytest.mark.parametrize("nbits", [1, 2, 4])
def test_pack_residuals_equals_searchsorted_and_shifts(nbits, monkeypatch):
    """Compression's packing against numpy written from the definition, on values that fall
    exactly on a cutoff too (searchsorted puts them in the lower bucket), in several blocks."""
    monkeypatch.setattr(kernels, "_PACK_ROWS", 97)
    rng = np.random.default_rng(nbits)
    dim, levels = 16, 1 << nbits
    centroids = unit(rng.standard_normal((8, dim)))
    cutoffs = np.sort(rng.standard_normal(levels - 1) * 0.1).astype(np.float32)
    codes = rng.integers(0, len(centroids), size=1000).astype(np.uint16)
    residuals = (rng.standard_normal((1000, dim)) * 0.1).astype(np.float32)
    residuals[::7, ::3] = cutoffs[rng.integers(0, len(cutoffs), size=residuals[::7, ::3].shape)]
    vectors = centroids[codes] + residuals
    buckets = np.searchsorted(cutoffs, vectors - centroids[codes]).reshape(1000, -1, 8 // nbits)
    expected = np.zeros(buckets.shape[:2], np.uint8)
    for j in range(8 // nbits):
        expected |= (buckets[:, :, j] << ((8 // nbits - 1 - j) * nbits)).astype(np.uint8)
    assert np.array_equal(kernels.pack_residuals(vectors, codes, centroids, cutoffs, nbits), expected)
