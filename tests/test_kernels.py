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
    got = kernels.centroid_interaction(scores * keep[:, None], codes, starts, ends)
    np.testing.assert_allclose(got, reference_interaction(scores, keep, codes, starts, ends), atol=1e-5)


def test_probe_order_is_each_query_tokens_best_centroids():
    scores = np.random.default_rng(3).standard_normal((500, 7)).astype(np.float32)
    order, _ = kernels.probe_order(scores, 9, 0.0)
    np.testing.assert_array_equal(order, np.argsort(-scores, axis=0)[:9].T)
    assert kernels.probe_order(scores, 10_000, 0.0)[0].shape == (7, 500)  # capped at K


def test_split_across_threads_gives_the_same_scores(encoded, monkeypatch):
    codec, codes, packed, starts, ends = encoded
    q = unit(np.random.default_rng(9).standard_normal((4, codec.dim)))
    whole = kernels.exact_maxsim(q, codec.centroids, codec.byte_table, codes, packed, starts, ends)
    monkeypatch.setattr(kernels, "_MIN_SPLIT_TOKENS", 16)
    if kernels._POOL is None:
        pytest.skip("one core: nothing is split")
    split = kernels.exact_maxsim(q, codec.centroids, codec.byte_table, codes, packed, starts, ends)
    np.testing.assert_array_equal(whole, split)
