import numpy as np
import pytest

from lfm2_retrieval.index import ResidualCodec, default_num_centroids
from lfm2_retrieval.index.codec import train_centroids

from index_helpers import clustered_corpus


@pytest.fixture(scope="module")
def tokens():
    return np.concatenate(clustered_corpus(600, dim=128, seed=3))


def test_default_num_centroids_doubles_plaids_while_codes_stay_two_bytes():
    from lfm2_retrieval.index.codec import plaid_num_centroids

    assert plaid_num_centroids(10_000) == 1024  # 16 * 100 = 1600 -> 2^10
    assert default_num_centroids(10_000) == 2048
    assert plaid_num_centroids(868_582) == 8192 and default_num_centroids(868_582) == 16384  # SciFact
    assert plaid_num_centroids(4_200_000) == 32768 and default_num_centroids(4_200_000) == 65536
    assert default_num_centroids(25_900_000) == 65536  # PLAID's own: twice would need 4-byte codes
    assert default_num_centroids(185_000_000) == 131072  # 1M chunks of 185 tokens: PLAID's


@pytest.mark.parametrize("nbits, min_mean_cos", [(1, 0.80), (2, 0.92), (4, 0.98)])
def test_round_trip_error_shrinks_with_nbits(tokens, nbits, min_mean_cos):
    codec = ResidualCodec.train(tokens, nbits)
    codes, packed = codec.compress(tokens)
    assert packed.shape == (len(tokens), 128 * nbits // 8) and packed.dtype == np.uint8
    restored = codec.decompress(codes, packed)
    cos = (tokens * restored).sum(1) / np.linalg.norm(restored, axis=1)
    assert cos.mean() >= min_mean_cos
    # Each dimension's error is bounded by the bucket it fell into: the residual lies between
    # two cutoffs (or beyond the outermost), and its weight lies in the same interval.
    residual = tokens - codec.centroids[codes]
    err = np.abs(residual - (restored - codec.centroids[codes]))
    inner = (residual > codec.cutoffs[0]) & (residual < codec.cutoffs[-1])
    if nbits > 1:
        widest_inner_bucket = np.diff(codec.cutoffs).max()
        assert err[inner].max() <= widest_inner_bucket + 1e-6


def test_decompression_is_exact_and_deterministic(tokens):
    codec = ResidualCodec.train(tokens, 2)
    codes, packed = codec.compress(tokens[:500])
    a = codec.decompress(codes, packed)
    b = codec.decompress(codes.copy(), packed.copy())
    assert np.array_equal(a, b)
    # Compressing the decompressed vectors again gives the same bytes (a fixed point).
    codes2, packed2 = codec.compress(a)
    assert np.array_equal(codes, codes2) and np.array_equal(packed, packed2)


@pytest.mark.parametrize("nbits", [1, 2, 4])
def test_bit_packing_round_trips_every_bucket(nbits):
    rng = np.random.default_rng(0)
    levels = 1 << nbits
    weights = np.sort(rng.standard_normal(levels)).astype(np.float32)
    cutoffs = ((weights[1:] + weights[:-1]) / 2).astype(np.float32)
    codec = ResidualCodec(np.eye(1, 16, dtype=np.float32), cutoffs, weights, nbits)
    buckets = rng.integers(0, levels, size=(50, 16))
    vectors = codec.centroids[0] + weights[buckets]
    codes, packed = codec.compress(vectors)
    assert np.allclose(codec.decompress(codes, packed), vectors, atol=1e-6)


def test_bytes_per_token_at_nbits_2_and_code_width():
    codec = ResidualCodec(np.eye(4, 128, dtype=np.float32), np.zeros(3, np.float32), np.zeros(4, np.float32), 2)
    assert codec.bytes_per_token == 34 and codec.code_dtype == np.uint16


def test_two_level_kmeans_gives_the_requested_unit_centroids(tokens):
    centroids = train_centroids(tokens, 256, flat_limit=64)
    assert centroids.shape == (256, 128)
    np.testing.assert_allclose(np.linalg.norm(centroids, axis=1), 1.0, atol=1e-5)


def test_bad_nbits_and_dims_are_refused():
    with pytest.raises(ValueError, match="nbits"):
        ResidualCodec(np.eye(2, 8, dtype=np.float32), np.zeros(2, np.float32), np.zeros(3, np.float32), 3)
    with pytest.raises(ValueError, match="multiple of 8"):
        ResidualCodec(np.eye(2, 6, dtype=np.float32), np.zeros(1, np.float32), np.zeros(2, np.float32), 1)


def test_grouped_assignment_above_the_exact_limit_finds_near_best_centroids(tokens, monkeypatch):
    """Above EXACT_LIMIT centroids a vector is compared with its probed groups only: it must
    still get the best centroid almost always, and a near-best one otherwise."""
    from lfm2_retrieval.index.codec import _CentroidAssigner

    centroids = train_centroids(tokens, 1024, niter=4)
    scores = tokens @ centroids.T
    exact = scores.argmax(1)
    monkeypatch.setattr(_CentroidAssigner, "EXACT_LIMIT", 256)
    assigner = _CentroidAssigner(centroids)
    assert assigner.flat.ntotal < len(centroids)  # the grouped path, not the flat one
    got = assigner.nearest(tokens)
    assert (got == exact).mean() >= 0.97
    loss = scores.max(1) - scores[np.arange(len(tokens)), got]
    assert loss.mean() < 0.005 and loss.min() >= 0
    # Batches do not change the answer: each vector is assigned on its own.
    assert np.array_equal(assigner.nearest(tokens, batch=777), got)
    monkeypatch.setattr(_CentroidAssigner, "PROBE", 1_000)  # probing every group is exact search
    assert np.array_equal(_CentroidAssigner(centroids).nearest(tokens), exact)
