"""The benchmark's real collection cache (eval/collections/real_vectors.py) and its query subsets (eval/collections/):
what the peers and this index are given must be the same chunks, in the same order, with the
truth of the same queries."""

import json
from pathlib import Path

import numpy as np
import pytest

from eval import collections as bench_collections
from eval.collections.real_vectors import RealVectors


def write_cache(folder: Path, parts: list[list[np.ndarray]], dim: int) -> None:
    folder.mkdir()
    for number, part in enumerate(parts):
        np.concatenate(part).astype(np.float32).tofile(folder / f"part-{number:05d}.f32")
        np.save(folder / f"part-{number:05d}.lengths.npy", np.array([len(v) for v in part], np.int32))
    n = sum(len(p) for p in parts)
    (folder / "chunks.jsonl").write_text("".join(json.dumps({"id": f"c{i}"}) + "\n" for i in range(n)))
    (folder / "done.json").write_text(json.dumps({"chunks": n, "requested": n, "dim": dim}))


@pytest.fixture
def cache(tmp_path):
    rng = np.random.default_rng(0)
    chunks = [rng.standard_normal((int(rng.integers(1, 9)), 4)).astype(np.float32) for _ in range(7)]
    write_cache(tmp_path / "cache", [chunks[:3], chunks[3:6], chunks[6:]], dim=4)
    return tmp_path / "cache", chunks


@pytest.mark.parametrize("limit", [None, 7, 5, 3, 1])
def test_a_prefix_of_the_cache_is_its_first_chunks_in_order(cache, limit):
    folder, chunks = cache
    vectors = RealVectors(folder, limit=limit)
    want = chunks[:limit]
    assert vectors.n_chunks == len(want)
    assert vectors.n_tokens == sum(len(c) for c in want)
    assert vectors.chunk_ids() == [f"c{i}" for i in range(len(want))]
    got = []
    for first, piece in vectors.pieces():
        assert first == len(got)  # each piece says where it starts
        got += piece
    assert len(got) == len(want)
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)


def test_peers_get_evenly_spaced_queries_with_their_own_truth():
    queries = [np.full((2, 4), i, np.float32) for i in range(84)]
    col = bench_collections.Collection("c", 5, 10, queries, lambda: iter(()),
                                 truth={10: [[i] for i in range(84)], 100: [[i, i] for i in range(84)]}, dim=4)
    sub = bench_collections.query_subset(col, 10)
    kept = bench_collections.subset_positions(84, 10)
    assert kept[0] == 0 and kept[-1] == 83 and len(set(kept)) == 10  # first and last query kept, none twice
    assert [int(q[0, 0]) for q in sub.queries] == kept
    assert sub.truth[10] == [[i] for i in kept] and sub.truth[100] == [[i, i] for i in kept]
    assert bench_collections.query_subset(col, None) is col and bench_collections.query_subset(col, 84) is col
