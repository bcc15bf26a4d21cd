"""An index written by release 0.1.0 (tests/data/make_release_index.py) opens, searches exactly
as it did then, and takes new commits."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from lfm2_retrieval.index import MultiVectorIndex

RELEASE = Path(__file__).parent / "data" / "index-0.1.0"


@pytest.fixture()
def old_index(tmp_path):
    # A copy: opening must not need to write, but committing does, and the fixture stays as released.
    shutil.copytree(RELEASE / "index", tmp_path / "index")
    return MultiVectorIndex(tmp_path / "index")


def listing(hits):
    return [[h.id, round(float(h.score), 6)] for h in hits]


def assert_same(got, want):
    """The same scores rank by rank, and the same ids at each score (ties may come in any order;
    at the cut-off score the ids may differ)."""
    assert np.allclose([s for q in got for _, s in q], [s for q in want for _, s in q], atol=1e-5)
    for g, w in zip(got, want):
        cut = w[-1][1] if w else 0.0
        assert above(g, cut) == above(w, cut)


def above(hits, cut):
    """The ids of the hits scored above the cut-off score (with the scores equal rank by rank,
    the same ids here is the same ranking up to the order of ties)."""
    return {i for i, s in hits if s > cut + 1e-4}


def test_release_index_searches_as_it_did(old_index):
    want = json.loads((RELEASE / "expected.json").read_text())
    queries = list(np.load(RELEASE / "queries.npy"))
    assert old_index.commit == want["commit"]
    assert len(old_index) == want["chunks"]
    assert_same([listing(h) for h in old_index.search(queries, k=10)], want["semantic"])
    assert_same([listing(h) for h in old_index.search(queries, k=5, filter={"lang": "de"})], want["semantic_de"])
    assert_same([listing(h) for h in old_index.search_lexical(want["lexical_texts"], k=10)], want["lexical"])
    assert old_index.get(["doc-1#0", "doc-7#0"]) == want["stored"]


def test_release_index_takes_new_commits(old_index):
    queries = list(np.load(RELEASE / "queries.npy"))
    before = len(old_index)
    new = [q.copy() for q in queries[:3]]
    with old_index.writer() as w:
        w.add(["new-0#0", "new-1#0", "new-2#0"], new, ["fresh text one", "fresh text two", "fresh text three"],
              [{"doc_id": f"new-{i}", "chunk": 0} for i in range(3)])
        w.delete(["doc-1#0"])
    reopened = MultiVectorIndex(old_index.path)
    assert len(reopened) == before + 3 - 1
    assert reopened.get(["doc-1#0"]) == [None]
    # Each new chunk holds its query's own tokens, so it is that query's best match.
    assert [hits[0].id for hits in reopened.search(new, k=1)] == ["new-0#0", "new-1#0", "new-2#0"]
    assert reopened.search_lexical(["fresh three"], k=1)[0][0].id == "new-2#0"
    reopened.merge_segments(max_segments=1)
    assert len(MultiVectorIndex(old_index.path)) == before + 2
