"""The query plan's product in bfloat16 (where the CPU multiplies it natively) or float32: the
choice, its precision, and that it changes no ranking that the exact stage decides."""

from pathlib import Path

import numpy as np
import pytest
import torch

from lfm2_retrieval.index import MultiVectorIndex, SearchParams
from lfm2_retrieval.index import search as search_module
from lfm2_retrieval.index.search import PLAN_DTYPE_ENV, QueryPlan, centroid_scores, plan_dtype

from index_helpers import clustered_corpus, exhaustive_top, queries_from

DIM = 64


@pytest.fixture
def dtype_env(monkeypatch):
    """Set $LFM2_SEARCH_PLAN_DTYPE for one test (plan_dtype reads it once per process)."""
    def use(value: str | None) -> None:
        if value is None:
            monkeypatch.delenv(PLAN_DTYPE_ENV, raising=False)
        else:
            monkeypatch.setenv(PLAN_DTYPE_ENV, value)
        plan_dtype.cache_clear()
    yield use
    plan_dtype.cache_clear()


@pytest.fixture(scope="module")
def corpus():
    return clustered_corpus(1200, dim=DIM, seed=3)


@pytest.fixture(scope="module")
def index(tmp_path_factory, corpus):
    idx = MultiVectorIndex.create(tmp_path_factory.mktemp("plan") / "idx", dim=DIM, nbits=4)
    idx.add([f"doc-{i}" for i in range(len(corpus))], corpus)
    return idx


def test_the_environment_chooses_the_plan_dtype(dtype_env):
    dtype_env("float32")
    assert plan_dtype() is torch.float32
    dtype_env("BFloat16 ")
    assert plan_dtype() is torch.bfloat16
    dtype_env("float16")
    with pytest.raises(ValueError, match="float32 or bfloat16"):
        plan_dtype()


def test_by_default_bfloat16_only_where_the_cpu_multiplies_it(dtype_env):
    dtype_env(None)
    cpuinfo = Path("/proc/cpuinfo")
    native = cpuinfo.exists() and bool({"avx512_bf16", "amx_bf16"} & set(cpuinfo.read_text().split()))
    assert plan_dtype() is (torch.bfloat16 if native else torch.float32)


def test_bfloat16_scores_are_close_to_float32_ones(index, corpus, dtype_env):
    codec = index._snapshot.codec
    for q in queries_from(corpus, 10, seed=5):
        dtype_env("float32")
        exact = centroid_scores(codec, q)
        np.testing.assert_allclose(exact, codec.centroids @ q.T, atol=1e-5)
        dtype_env("bfloat16")
        rounded = centroid_scores(codec, q)
        assert rounded.dtype == np.float32 and rounded.shape == exact.shape
        assert np.abs(rounded - exact).max() < 8e-3  # 8 bits of mantissa on unit vectors
        assert np.abs(rounded - exact).mean() < 1e-3
        # Each query token's best centroid is still among its few best.
        params = SearchParams.for_k(10, 4)
        best = QueryPlan(codec, q, params).order[:, 0]
        assert all(exact[c, t] >= exact[:, t].max() - 8e-3 for t, c in enumerate(best))


def test_rankings_are_those_of_float32_and_of_exhaustive_search(index, corpus, dtype_env):
    queries = queries_from(corpus, 30, seed=7)
    found = {}
    for dtype in ("float32", "bfloat16"):
        dtype_env(dtype)
        found[dtype] = [[(h.id, h.score) for h in index.search(q, k=10)] for q in queries]
    same = [[i for i, _ in a] == [i for i, _ in b] for a, b in zip(found["float32"], found["bfloat16"])]
    assert np.mean(same) >= 0.9  # the exact stage ranks both; only near-ties at a cut may differ
    for a, b in zip(found["float32"], found["bfloat16"]):
        common = dict(a).keys() & dict(b).keys()
        # The same chunk's exact score, but for float32 rounding (summed in another block order).
        assert all(abs(dict(a)[i] - dict(b)[i]) < 1e-4 for i in common)
    recall = [len({i for i, _ in got} & {f"doc-{i}" for i in exhaustive_top(q, corpus, 10)}) / 10
              for q, got in zip(queries, found["bfloat16"])]
    assert np.mean(recall) >= 0.95


def test_the_bfloat16_centroids_are_made_once(index, dtype_env):
    dtype_env("bfloat16")
    codec = index._snapshot.codec
    assert codec.centroids_bf16 is codec.centroids_bf16
    assert codec.centroids_bf16.dtype is torch.bfloat16 and tuple(codec.centroids_bf16.shape) == codec.centroids.shape
    assert search_module.plan_dtype() is torch.bfloat16
