"""The compiled scoring loops of the index search, against plain numpy written from the
definitions (decompress, normalise, MaxSim; centroid interaction with pruning)."""

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


@pytest.mark.parametrize("threshold", [-1.0, 0.2, 0.6, 2.0])
def test_centroid_interaction_with_pruning(encoded, threshold):
    codec, codes, packed, starts, ends = encoded
    q = unit(np.random.default_rng(8).standard_normal((6, codec.dim)))
    scores = np.ascontiguousarray(codec.centroids @ q.T)
    order, keep = kernels.probe_order(scores, 5, threshold)
    assert np.array_equal(keep, scores.max(1) >= threshold)
    got = kernels.centroid_interaction(scores, keep, codes, starts, ends)
    np.testing.assert_allclose(got, reference_interaction(scores, keep, codes, starts, ends), atol=1e-5)


def test_probe_order_is_each_query_tokens_best_centroids():
    scores = np.random.default_rng(3).standard_normal((500, 7)).astype(np.float32)
    order, _ = kernels.probe_order(scores, 9, 0.0)
    np.testing.assert_array_equal(order, np.argsort(-scores, axis=0)[:9].T)
    assert kernels.probe_order(scores, 10_000, 0.0)[0].shape == (7, 500)  # capped at K


def test_probe_order_in_blocks_equals_one_pass():
    scores = np.random.default_rng(4).standard_normal((1000, 6)).astype(np.float32)
    whole, keep = kernels.probe_order(scores, 8, 0.5)
    order, keep_blocks, probe = kernels.new_probe(1000, 6, 8, 0.5)
    for first in range(0, 1000, 300):  # blocks of 300, the last one short
        probe(scores[first:first + 300], first)
    np.testing.assert_array_equal(order, whole)
    np.testing.assert_array_equal(keep_blocks, keep)


def test_stage_one_candidates_and_estimates():
    """Distinct allowed chunks of the probed (chunk, centroid) pairs, and each one's estimate:
    per query token the best score of its probed centroids, or the floor where it has none."""
    rng = np.random.default_rng(5)
    n_chunks, nq = 50, 4
    scores = rng.standard_normal((20, nq)).astype(np.float32)
    pair_docs = rng.integers(0, n_chunks, size=120)
    pair_cent = rng.integers(0, 20, size=120)
    allowed = rng.random(n_chunks) < 0.7
    floor = np.array([0.5, -0.2, 0.0, 1.5], np.float32)
    for mask in (None, allowed):
        docs, slot = kernels.probed_candidates(pair_docs, mask, n_chunks)
        want = np.unique(pair_docs if mask is None else pair_docs[mask[pair_docs]])
        np.testing.assert_array_equal(docs, want)
        assert (slot[docs] == np.arange(len(docs))).all() and (np.delete(slot, docs) == -1).all()
        got = kernels.probed_estimates(scores, pair_docs, pair_cent, slot, len(docs), floor)
        ref = [np.maximum(floor, scores[pair_cent[pair_docs == d]].max(0)).sum() for d in docs]
        np.testing.assert_allclose(got, ref, rtol=1e-6)
        without = kernels.probed_estimates(scores, pair_docs, pair_cent, slot, len(docs))  # floor 0
        np.testing.assert_allclose(without, [np.maximum(0, scores[pair_cent[pair_docs == d]].max(0)).sum()
                                             for d in docs], rtol=1e-6)


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
    scores = np.random.default_rng(11).standard_normal((codec.num_centroids, 5)).astype(np.float32)
    keep = np.ones(codec.num_centroids, dtype=bool)
    pieces = [slice(0, 7), slice(7, 8), slice(8, 8), slice(8, len(starts))]
    alone = [kernels.exact_maxsim(q, codec.centroids, codec.byte_table, codes, packed, starts[p], ends[p])
             for p in pieces]
    ci_alone = [kernels.centroid_interaction(scores, keep, codes, starts[p], ends[p]) for p in pieces]
    monkeypatch.setattr(kernels, "_MIN_SPLIT_TOKENS", 16)
    if kernels._POOL is None:
        pytest.skip("one core: nothing is split")
    together = kernels.exact_maxsim_each(q, codec.centroids, codec.byte_table,
                                         [(codes, packed, starts[p], ends[p]) for p in pieces])
    ci_together = kernels.centroid_interaction_each(scores, keep, [(codes, starts[p], ends[p]) for p in pieces])
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
