"""Sharded indexes: a split index equals the unsharded one, chunks are placed by document,
writes are one two-phase commit across shards, and a crash at any phase is recovered."""

import os
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from lfm2_retrieval.engine import SearchEngine, TextDocument
from lfm2_retrieval.errors import FilterError, IndexFolderError, InvalidRequestError, ShardUnavailableError
from lfm2_retrieval.index import MultiVectorIndex, SearchParams
from lfm2_retrieval.shards import ShardedIndex, ShardMap, shard_policy, split_index
from lfm2_retrieval.shards.shard_map import shard_of

from index_helpers import assert_same_hits, clustered_corpus, queries_from

DIM = 64
N_DOCS = 120  # documents of 3 chunks each


@pytest.fixture(scope="module")
def corpus():
    return clustered_corpus(N_DOCS * 3, dim=DIM, seed=3)


def chunk_rows(corpus):
    ids = [f"doc-{i // 3}#{i % 3}" for i in range(len(corpus))]
    meta = [{"doc_id": f"doc-{i // 3}", "lang": ["en", "fr"][i // 3 % 2], "year": 2000 + i // 3 % 20}
            for i in range(len(corpus))]
    words = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta"]
    texts = [" ".join(words[(i * 7 + j) % len(words)] for j in range(3 + i % 5)) + f" word{i % 17}"
             for i in range(len(corpus))]
    return ids, meta, texts


@pytest.fixture(scope="module")
def unsharded(tmp_path_factory, corpus):
    path = tmp_path_factory.mktemp("plain") / "idx"
    index = MultiVectorIndex.create(path, dim=DIM, nbits=4)
    ids, meta, texts = chunk_rows(corpus)
    half = len(ids) // 2  # two commits: two segments, as a real index has several
    index.add(ids[:half], corpus[:half], texts[:half], meta[:half])
    index.add(ids[half:], corpus[half:], texts[half:], meta[half:])
    return index


@pytest.fixture(scope="module")
def sharded(tmp_path_factory, unsharded):
    return split_index(unsharded.path, tmp_path_factory.mktemp("sharded") / "idx", n_shards=3)


def test_a_split_index_equals_the_unsharded_one(unsharded, sharded, corpus):
    assert len(sharded) == len(unsharded) == N_DOCS * 3
    assert sharded.manifest.counts.tokens == unsharded.manifest.counts.tokens
    queries = queries_from(corpus, 50)
    # Exact scores of the same stored codes: equal, whatever the shards.
    for a, b in zip(unsharded.search(queries, k=10, exhaustive=True), sharded.search(queries, k=10, exhaustive=True)):
        assert_same_hits(a, b)
    # The PLAID stages with a budget that covers these small segments: equal too.
    wide = SearchParams(nprobe=64, candidates=4096, rerank=4096, centroid_threshold=0.0, probe_docs=4096)
    for a, b in zip(unsharded.search(queries, k=10, params=wide), sharded.search(queries, k=10, params=wide)):
        assert_same_hits(a, b)
    for flt in [{"lang": "fr"}, {"year": {"$gte": 2010}}]:
        assert_same_hits(unsharded.search(queries[0], k=10, filter=flt, params=wide),
                         sharded.search(queries[0], k=10, filter=flt, params=wide))
    # With the default budget, each segment has its own: more, smaller segments score more
    # chunks exactly, so the sharded index is at least as close to the exhaustive top-10.
    def recall(index):
        got = index.search(queries, k=10)
        truth = unsharded.search(queries, k=10, exhaustive=True)
        return np.mean([len({h.id for h in g} & {h.id for h in t}) / 10 for g, t in zip(got, truth)])
    assert recall(sharded) >= recall(unsharded) - 0.01 and recall(sharded) >= 0.95
    texts = ["alpha beta", "gamma word3", "theta theta zeta", "nothing matches this"]
    for a, b in zip(unsharded.search_lexical(texts, k=10), sharded.search_lexical(texts, k=10)):
        assert_same_hits(a, b)  # BM25 with the whole collection's statistics, not each shard's
    assert sharded.get(["doc-7#2", "nothing"])[1] is None and sharded.get(["doc-7#2"])[0]["id"] == "doc-7#2"
    assert np.array_equal(sharded.vectors(["doc-9#0"])[0], unsharded.vectors(["doc-9#0"])[0])


def test_chunks_live_in_the_shard_of_their_document(sharded):
    n = sharded.n_shards
    for s, shard in enumerate(sharded.shards):
        stored = list(shard.scan_metadata(["doc_id"]))
        assert stored, "every shard holds some documents"
        assert all(shard_of(meta["doc_id"], n) == s for _, meta in stored)
    # The placement is a fixed function of the id: the same on every machine and release.
    assert [shard_of(f"doc-{i}", 4) for i in range(8)] == [shard_of(f"doc-{i}", 4) for i in range(8)]
    assert shard_of("doc-1", 4) == int.from_bytes(__import__("hashlib").blake2b(b"doc-1", digest_size=8).digest(),
                                                  "little") % 4
    fingerprints = {shard.manifest.codec_files["centroids.npy"][1] for shard in sharded.shards}
    assert len(fingerprints) == 1  # one codec, the source's


def test_writes_route_by_document_and_commit_once(tmp_path, corpus):
    index = ShardedIndex.create(tmp_path / "idx", n_shards=4, dim=DIM, nbits=2)
    ids, meta, texts = chunk_rows(corpus)
    with index.writer() as w:  # an empty sharded index: the first chunks train the one codec
        w.add(ids, corpus, texts, meta)
    assert index.commit == 1 and len(index) == len(ids)
    assert len({shard.manifest.codec_files["centroids.npy"][1] for shard in index.shards}) == 1
    with index.writer() as w:
        assert w.delete(["doc-1#0", "doc-1#1", "doc-1#2", "missing"]) == 3
        w.add(["doc-1#0"], [corpus[0]], ["replacement"], [{"doc_id": "doc-1"}], replace=True)
        w.set_user_data({"note": "kept"})
    reopened = ShardedIndex(index.path)
    assert reopened.commit == 2 and len(reopened) == len(ids) - 2
    assert reopened.get(["doc-1#0"])[0]["text"] == "replacement"
    assert reopened.manifest.user_data == {"note": "kept"}
    # A shard with no change in a commit makes no commit of its own.
    before = list(reopened.shard_map.shard_commits)
    with reopened.writer() as w:
        w.delete(["doc-2#0"])
    changed = [a != b for a, b in zip(before, reopened.shard_map.shard_commits)]
    assert sum(changed) == 1 and changed[shard_of("doc-2", 4)]
    reopened.optimize()
    assert reopened.manifest.counts.deleted == 0 and all(len(s.manifest.segments) == 1 for s in reopened.shards)
    with pytest.raises(InvalidRequestError):
        reopened.optimize(nbits=4)


CRASH_SCRIPT = textwrap.dedent("""
    import sys, numpy as np
    from lfm2_retrieval.shards import ShardedIndex
    index = ShardedIndex(sys.argv[1])
    rng = np.random.default_rng(0)
    with index.writer() as w:
        w.delete([f"doc-{i}#0" for i in range(40)])
        w.add([f"new-{i}#0" for i in range(30)], [rng.standard_normal((6, 64)).astype("float32") for _ in range(30)],
              [f"new {i}" for i in range(30)], [{"doc_id": f"new-{i}"} for i in range(30)])
""")


@pytest.mark.parametrize("point,committed", [("shards-prepared", False), ("shard-map-written", True)])
def test_a_crash_mid_commit_is_all_or_nothing(tmp_path, unsharded, point, committed):
    """kill -9 after every shard prepared its commit (before the commit point): the old sharded
    commit stays and the prepared shards are dropped; after the shard map is written: the commit
    happened, and the next reader publishes the shards that had not yet."""
    index = split_index(unsharded.path, tmp_path / "idx", n_shards=3)
    before = len(index)
    env = {**os.environ, "LFM2_SEARCH_CRASH_AT": point}
    done = subprocess.run([sys.executable, "-c", CRASH_SCRIPT, str(index.path)], env=env, capture_output=True)
    assert done.returncode == 137, done.stderr.decode()[-2000:]
    assert any((index.path / name / "manifest.next.json").exists() for name in index.shard_map.shards)
    reader = ShardedIndex(index.path)
    expected = before - 40 + 30 if committed else before
    assert len(reader) == expected and reader.commit == index.commit + (1 if committed else 0)
    assert (reader.get(["new-3#0"])[0] is not None) == committed
    with reader.writer() as w:  # the next writer starts from a clean state either way
        w.add(["after#0"], [np.ones((4, DIM), np.float32)], ["after"], [{"doc_id": "after"}])
    assert len(ShardedIndex(index.path)) == expected + 1
    assert not any((index.path / name / "manifest.next.json").exists() for name in reader.shard_map.shards)


def test_a_shard_changed_on_its_own_is_refused(tmp_path, unsharded):
    index = split_index(unsharded.path, tmp_path / "idx", n_shards=2)
    MultiVectorIndex(index.path / index.shard_map.shards[1]).optimize()  # a new codec for one shard only
    with pytest.raises(IndexFolderError):
        ShardedIndex(index.path)
    with pytest.raises(IndexFolderError):
        split_index(index.path, tmp_path / "again", 2)


def test_the_engine_runs_on_a_sharded_index(tmp_path, pylate_tiny_dir):
    """SearchEngine (and so the CLI, the API and ingestion) works on a sharded index unchanged:
    hybrid search equals the unsharded engine's."""
    docs = [TextDocument(f"d{i}", f"document {i} about {['cats', 'dogs', 'birds', 'fish'][i % 4]} and number {i}",
                         {"lang": "en"}) for i in range(40)]
    plain = SearchEngine.open(tmp_path / "plain", model=str(pylate_tiny_dir), create=True)
    plain.upsert(docs)
    split_index(plain.path, tmp_path / "sharded", n_shards=3)
    sharded = SearchEngine.open(tmp_path / "sharded")
    assert sharded.sharded and sharded.stats()["documents"] == 40
    for mode in ["semantic", "lexical", "hybrid"]:
        for a, b in zip(plain.search(["dogs and number 7", "fish"], k=5, mode=mode),
                        sharded.search(["dogs and number 7", "fish"], k=5, mode=mode)):
            assert_same_hits(a, b)
    sharded.upsert([TextDocument("d3", "now about horses", {"lang": "en"})])
    sharded.delete(["d4"])
    assert sharded.search(["horses"], k=1, mode="lexical")[0][0].metadata["doc_id"] == "d3"
    assert sharded.stats()["documents"] == 39
    report = SearchEngine.check(sharded.path, full=True)
    assert not report.problems and any(c.startswith("shard-002/") for c in report.checked)
    assert ShardMap.read(sharded.path).n_shards == 3


def test_bm25_scores_do_not_depend_on_how_the_collection_is_split(tmp_path):
    """The same texts in one segment or in three of very different lengths: equal BM25 scores
    (the collection's IDF and its average length; before, each segment kept its own length
    normalisation and a short segment's texts scored up to 10% apart)."""
    rng = np.random.default_rng(0)
    vocab = [f"w{i}" for i in range(40)]
    texts = [" ".join(rng.choice(vocab, size=int(n))) for n in rng.integers(2, 60, size=300)]
    texts[:100] = [t[:20] for t in texts[:100]]  # a segment of short texts
    vectors = [np.ones((2, DIM), np.float32)] * len(texts)
    one = MultiVectorIndex.create(tmp_path / "one", dim=DIM, nbits=2)
    one.add([f"t{i}" for i in range(300)], vectors, texts)
    three = MultiVectorIndex.create(tmp_path / "three", dim=DIM, nbits=2)
    for part in (range(0, 100), range(100, 120), range(120, 300)):
        three.add([f"t{i}" for i in part], [vectors[i] for i in part], [texts[i] for i in part])
    assert len(three.snapshot.segments) == 3
    queries = ["w1 w2", "w3", "w5 w5 w7 w11", "w39 w0"]
    for a, b in zip(one.search_lexical(queries, k=20), three.search_lexical(queries, k=20)):
        assert_same_hits(a, b)


class SlowSearch:
    """A shard whose MaxSim searches take `delay` seconds (a slow disk, a busy host): a ShardSearch."""

    def __init__(self, shard: MultiVectorIndex, delay: float) -> None:
        self.shard, self.delay, self.capabilities = shard, delay, shard.capabilities

    def search(self, *args, **kwargs):
        time.sleep(self.delay)
        return self.shard.search(*args, **kwargs)

    def search_lexical(self, *args, **kwargs):
        return self.shard.search_lexical(*args, **kwargs)

    def lexical_statistics(self, *args, **kwargs):
        return self.shard.lexical_statistics(*args, **kwargs)

    def health(self):
        return self.shard.health()


def slow(name: str, delay: float):
    """search_on for ShardedIndex: the shard called `name` searches slowly."""
    return lambda shard, shard_name: SlowSearch(shard, delay) if shard_name == name else shard


def test_a_slow_shard_is_an_error_or_a_flagged_partial_answer(tmp_path, unsharded, corpus):
    split_index(unsharded.path, tmp_path / "idx", n_shards=3)
    slow_name = "shard-001"
    index = ShardedIndex(tmp_path / "idx", search_on=slow(slow_name, 1.0))
    query = queries_from(corpus, 1)[0]
    full = index.search(query, k=10)  # no policy: every shard is waited for
    started = time.monotonic()
    with pytest.raises(ShardUnavailableError) as caught, shard_policy(timeout_s=0.2):
        index.search(query, k=10)
    assert time.monotonic() - started < 0.9 and caught.value.shards == [slow_name]
    assert "did not answer within 0.2 s" in str(caught.value)
    with shard_policy(timeout_s=0.2, allow_partial=True) as policy:
        partial = index.search(query, k=10)
    assert policy.missing == [slow_name]
    kept = [h for h in full if shard_of(h.metadata["doc_id"], 3) != 1]
    assert [h.id for h in partial][:len(kept)] == [h.id for h in kept]
    # Errors that are the request's own are never taken for an unavailable shard.
    with pytest.raises(FilterError), shard_policy(timeout_s=5, allow_partial=True):
        index.search(query, k=10, filter={"lang": {"$regex": "x"}})


def test_the_api_answers_503_or_a_flagged_partial_result(tmp_path, pylate_tiny_dir):
    from fastapi.testclient import TestClient

    from lfm2_retrieval.api import ApiSettings, create_app

    plain = SearchEngine.open(tmp_path / "plain", model=str(pylate_tiny_dir), create=True)
    plain.upsert([TextDocument(f"d{i}", f"note {i} on {['tea', 'coffee', 'water'][i % 3]}") for i in range(30)])
    split_index(plain.path, tmp_path / "sharded", n_shards=2)
    index = ShardedIndex(tmp_path / "sharded", search_on=slow("shard-000", 1.0))
    app = create_app(SearchEngine(index, model=str(pylate_tiny_dir)), ApiSettings(shard_timeout_s=0.2))
    with TestClient(app) as client:
        refused = client.post("/search", json={"query": "coffee", "k": 5, "mode": "semantic"})
        assert refused.status_code == 503 and refused.json()["error"] == "shard_unavailable"
        assert refused.headers["retry-after"] == "1" and "shard-000" in refused.json()["message"]
        partial = client.post("/search", json={"query": "coffee", "k": 5, "mode": "semantic", "allow_partial": True})
        assert partial.status_code == 200
        assert partial.json()["partial"] is True and partial.json()["missing_shards"] == ["shard-000"]
        assert all(shard_of(h["metadata"]["doc_id"], 2) == 1 for h in partial.json()["results"][0]["hits"])
        lexical = client.post("/search", json={"query": "coffee", "k": 5, "mode": "lexical"})
        assert lexical.status_code == 200 and "partial" not in lexical.json()  # the slow shard's BM25 is quick
        health = client.get("/health").json()
        assert [s["name"] for s in health["shards"]] == ["shard-000", "shard-001"]
        assert sum(s["chunks"] for s in health["shards"]) == 30 and health["status"] == "ok"


def test_a_search_sees_one_sharded_commit_while_another_thread_refreshes(tmp_path, unsharded, corpus):
    """Shard 1 is slow; while it waits, a writer deletes every chunk and the reader moves to that
    commit. The search in flight still answers from the commit it began on, on every shard."""
    import threading

    split_index(unsharded.path, tmp_path / "idx", n_shards=2)
    index = ShardedIndex(tmp_path / "idx", search_on=slow("shard-001", 0.5))
    query = queries_from(corpus, 1)[0]
    answer = {}
    search = threading.Thread(target=lambda: answer.setdefault("hits", index.search(query, k=20)))
    search.start()
    time.sleep(0.1)
    with ShardedIndex(tmp_path / "idx").writer() as w:
        w.delete([c for c, _ in index.scan_metadata([])])
    index.refresh()
    assert len(index) == 0
    search.join()
    shards = {shard_of(h.metadata["doc_id"], 2) for h in answer["hits"]}
    assert len(answer["hits"]) == 20 and shards == {0, 1}  # both shards answered from the old commit
