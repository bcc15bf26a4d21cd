import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest

from lfm2_retrieval.index import FilterError, IndexLockedError, MultiVectorIndex, SearchParams

from index_helpers import clustered_corpus, exhaustive_top, queries_from

DIM = 64


@pytest.fixture(scope="module")
def corpus():
    return clustered_corpus(1500, dim=DIM, seed=0)


@pytest.fixture()
def index(tmp_path, corpus):
    idx = MultiVectorIndex.create(tmp_path / "idx", dim=DIM, nbits=4)
    ids = [f"doc-{i}" for i in range(len(corpus))]
    meta = [{"group": i % 3, "year": 2000 + i % 25, "lang": ["en", "fr", "ja"][i % 3]} for i in range(len(corpus))]
    idx.add(ids, corpus, [f"text {i}" for i in range(len(corpus))], meta)
    return idx


def ids_of(hits):
    return [h.id for h in hits]


def test_recall_against_exhaustive(index, corpus):
    queries = queries_from(corpus, 40)
    plaid, vs_raw = [], []
    for q in queries:
        truth_compressed = set(ids_of(index.search(q, k=10, exhaustive=True)))
        got = set(ids_of(index.search(q, k=10)))
        plaid.append(len(got & truth_compressed) / 10)
        raw = {f"doc-{i}" for i in exhaustive_top(q, corpus, 10)}
        vs_raw.append(len(got & raw) / 10)
    assert np.mean(plaid) >= 0.99  # pruning loses (almost) nothing
    assert np.mean(vs_raw) >= 0.95  # nbits=4 compression loses little


def test_default_search_effort_follows_k_and_nbits(index):
    small, fine, deep = SearchParams.for_k(10, 2), SearchParams.for_k(10, 4), SearchParams.for_k(100, 4)
    assert (small.rerank, fine.rerank) == (384, 480)  # finer residuals: a wider exact stage
    assert small.probe_target == fine.probe_target == 512  # probing does not follow it up
    assert deep.rerank >= 8 * 100 and deep.probe_target == min(deep.candidates // 2, 4 * deep.rerank)
    # The index picks them from its own nbits (here 4) when no params are given.
    calls = []
    original = SearchParams.for_k.__func__

    def spy(cls, k, nbits=2):
        calls.append((k, nbits))
        return original(cls, k, nbits)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(SearchParams, "for_k", classmethod(spy))
        index.search(np.ones((3, DIM), np.float32), k=10)
    assert calls == [(10, 4)]


def test_scores_are_exact_maxsim_of_decompressed_vectors(index, corpus):
    q = queries_from(corpus, 1)[0]
    hits = index.search(q, k=5)
    exhaustive = index.search(q, k=5, exhaustive=True)
    assert [h.score for h in hits] == pytest.approx([h.score for h in exhaustive], abs=1e-4)
    assert all(a.score >= b.score for a, b in zip(hits, hits[1:]))


@pytest.fixture()
def segmented(tmp_path, corpus):
    """The corpus in five segments (five commits; the first one trains the codec they share)."""
    idx = MultiVectorIndex.create(tmp_path / "segmented", dim=DIM, nbits=4)
    meta = [{"year": 2000 + i % 25} for i in range(len(corpus))]
    for start in range(0, 1500, 300):
        idx.add([f"doc-{i}" for i in range(start, start + 300)], corpus[start:start + 300], None,
                meta[start:start + 300])
    assert len(idx.snapshot.segments) == 5
    return idx


def test_segments_share_the_stage_budgets(segmented, corpus, monkeypatch):
    """Stage 3 scores `rerank` chunks in all, not per segment, and loses nothing for it."""
    from lfm2_retrieval.index import kernels

    scored, original = [], kernels.exact_maxsim_each

    def counting(q, centroids, table, jobs):
        scored.extend(len(starts) for *_, starts, _ in jobs if len(starts))
        return original(q, centroids, table, jobs)

    # Per segment, these budgets would score every chunk exactly (5 x 300); shared, a fifth.
    params = SearchParams(nprobe=8, candidates=600, rerank=300, centroid_threshold=0.0, probe_docs=100)
    agree = []
    for q in queries_from(corpus, 20):
        scored.clear()
        monkeypatch.setattr(kernels, "exact_maxsim_each", counting)
        got = ids_of(segmented.search(q, k=10, params=params))
        assert sum(scored) <= 300 and len(scored) >= 2  # one budget, drawn from several segments
        monkeypatch.setattr(kernels, "exact_maxsim_each", original)
        agree.append(len(set(got) & set(ids_of(segmented.search(q, k=10, exhaustive=True)))) / 10)
    assert np.mean(agree) >= 0.93


def test_a_selective_filter_over_segments_is_scored_exactly(segmented, corpus):
    """Fewer allowed chunks than the exact stage holds, spread over every segment: all of them
    are scored exactly, so nothing is lost to pruning however few each segment holds."""
    q = queries_from(corpus, 1)[0]
    params = SearchParams(nprobe=1, candidates=64, rerank=100, centroid_threshold=0.9, probe_docs=8)
    only = segmented.search(q, k=100, filter={"year": 2024}, params=params)
    assert len(only) == 60 and {h.metadata["year"] for h in only} == {2024}
    exact = segmented.search(q, k=100, filter={"year": 2024}, exhaustive=True)
    assert ids_of(only) == ids_of(exact)


def test_batches_of_queries_equal_single_queries(index, corpus):
    queries = queries_from(corpus, 5)
    batched = index.search(queries, k=7)
    assert [ids_of(h) for h in batched] == [ids_of(index.search(q, k=7)) for q in queries]


def test_reopening_gives_the_same_results(index, corpus):
    q = queries_from(corpus, 1)[0]
    again = MultiVectorIndex(index.path)
    assert ids_of(again.search(q, k=10)) == ids_of(index.search(q, k=10))
    assert len(again) == 1500 and again.commit == 1


def test_delete_upsert_and_stable_ids(index, corpus):
    q = corpus[42][:8]
    assert index.search(q, k=1)[0].id == "doc-42"
    assert index.delete(["doc-42", "missing"]) == 1
    assert "doc-42" not in ids_of(index.search(q, k=20))
    assert index.get(["doc-42", "doc-43"])[0] is None
    assert index.get(["doc-43"])[0]["text"] == "text 43"
    # Upsert puts doc-42 back with new content; other ids never change.
    index.upsert(["doc-42", "doc-7"], [corpus[42], corpus[1000]], ["new 42", "new 7"], [{"v": 2}, {"v": 2}])
    assert len(index) == 1500 and index.stats()["deleted"] == 2
    hit = index.search(q, k=1)[0]
    assert (hit.id, hit.text, hit.metadata) == ("doc-42", "new 42", {"v": 2})
    assert index.search(corpus[1000][:8], k=2)[0].id in {"doc-7", "doc-1000"}
    assert index.get(["doc-1499"])[0]["id"] == "doc-1499"


def test_adding_an_existing_id_or_bad_vectors_fails_and_changes_nothing(index, corpus):
    commit = index.commit
    with pytest.raises(ValueError, match="already exist"):
        index.add(["doc-1"], [corpus[1]])
    with pytest.raises(ValueError, match="duplicate"):
        index.add(["x", "x"], [corpus[1], corpus[2]])
    with pytest.raises(ValueError, match="NaN"):
        index.add(["nan"], [np.full((3, DIM), np.nan, np.float32)])
    with pytest.raises(ValueError, match=r"\[n_tokens, 64\]"):
        index.add(["wrong-dim"], [np.ones((3, 8), np.float32)])
    with pytest.raises(ValueError, match="no token vectors"):
        index.add(["empty"], [np.zeros((0, DIM), np.float32)])
    assert index.commit == commit and len(index) == 1500


def test_filters_restrict_before_scoring(index, corpus):
    q = queries_from(corpus, 1)[0]
    for filter_, check in [
        ({"lang": "fr"}, lambda m: m["lang"] == "fr"),
        ({"year": {"$gte": 2010, "$lt": 2012}}, lambda m: 2010 <= m["year"] < 2012),
        ({"group": {"$in": [0, 2]}}, lambda m: m["group"] in (0, 2)),
        ({"lang": {"$ne": "en"}, "year": {"$lte": 2003}}, lambda m: m["lang"] != "en" and m["year"] <= 2003),
        ({"$or": [{"lang": "ja"}, {"year": 2024}]}, lambda m: m["lang"] == "ja" or m["year"] == 2024),
        ({"lang": {"$prefix": "j"}}, lambda m: m["lang"].startswith("j")),
        ({"lang": {"$glob": "[ef]?"}}, lambda m: m["lang"] in ("en", "fr")),
        ({"lang": {"$glob": "*a"}, "year": {"$gte": 2001}}, lambda m: m["lang"] == "ja" and m["year"] >= 2001),
        ({"$and": [{"year": {"$gte": 2005}}, {"$or": [{"lang": "en"}, {"lang": "fr"}]}]},
         lambda m: m["year"] >= 2005 and m["lang"] in ("en", "fr")),
        ({"$and": [{"lang": {"$ne": "en"}}, {"lang": {"$ne": "fr"}}]}, lambda m: m["lang"] not in ("en", "fr")),
    ]:
        hits = index.search(q, k=10, filter=filter_)
        assert len(hits) == 10 and all(check(h.metadata) for h in hits)
        # The same results as exhaustive search under the same filter (PLAID may trade one).
        exhaustive = ids_of(index.search(q, k=10, filter=filter_, exhaustive=True))
        assert len(set(ids_of(hits)) & set(exhaustive)) >= 9
    # A selective filter still returns every match (no pruning loss).
    only = index.search(q, k=50, filter={"year": 2024, "group": 0})
    assert len(only) == sum(1 for i in range(1500) if 2000 + i % 25 == 2024 and i % 3 == 0)
    assert index.search(q, k=10, filter={"nonexistent": 1}) == []
    assert index.search(q, k=10, filter={"year": "not a year"}) == []
    assert index.search(q, k=10, filter={"year": {"$prefix": "20"}}) == []  # text operators on numbers: no match
    assert index.search(q, k=10, filter={"lang": {"$glob": "e.*"}}) == []  # glob, not a regular expression
    # A range of the wrong kind is a mistake to report, not an empty answer.
    for wrong, words in (({"year": {"$gte": "abc"}}, "holds numbers"), ({"lang": {"$lt": 3}}, "holds text")):
        with pytest.raises(FilterError, match=words):
            index.search(q, k=10, filter=wrong)
        with pytest.raises(FilterError, match=words):
            index.search_lexical(["anything"], k=10, filter=wrong)


@pytest.mark.parametrize(
    "bad",
    [
        {"year": {"$regex": "x"}},
        {"$and": []},
        {"g": {"$in": 3}},
        ["lang"],
        {"lang": {"$prefix": 3}},
        {"lang": {"$glob": ["*"]}},
        {"year": 2**64},
        {"year": {"$in": [1, -(2**70)]}},
        {"$or": [{"year": {"$gt": 2**63}}]},
    ],
)
def test_malformed_filters_are_refused(index, corpus, bad):
    with pytest.raises(FilterError):
        index.search(corpus[0][:4], k=3, filter=bad)


def test_bad_queries_are_refused(index):
    with pytest.raises(ValueError, match="non-empty"):
        index.search(np.zeros((0, DIM), np.float32))
    with pytest.raises(ValueError):
        index.search(np.zeros((3, DIM + 1), np.float32))
    with pytest.raises(ValueError, match="k must"):
        index.search(np.ones((3, DIM), np.float32), k=0)


def test_a_writer_whose_clean_up_fails_still_lets_the_next_one_in(index, corpus, monkeypatch):
    """A disk that fills up (or file handles that run out) while a failed write is rolled back
    must not leave the lock held: every later writer would be locked out until a restart."""
    import lfm2_retrieval.index.writer as writer_module

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    writer = index.writer()
    writer.add(["x"], [corpus[0]])
    monkeypatch.setattr(writer_module, "collect_garbage", full_disk)
    with pytest.raises(OSError, match="No space"):
        writer.abort()
    monkeypatch.undo()
    with index.writer() as second:  # not IndexLockedError
        second.add(["y"], [corpus[1]])
    assert "y" in {h.id for h in index.search(corpus[1][:4], k=100)}


def test_second_writer_gets_a_clear_error(index, corpus):
    with index.writer():
        with pytest.raises(IndexLockedError, match="another writer"):
            MultiVectorIndex(index.path).writer()
    with index.writer() as w:  # released after commit
        w.delete(["doc-0"])


def test_exception_in_writer_rolls_back(index, corpus):
    with pytest.raises(RuntimeError):
        with index.writer() as w:
            w.add(["new-doc"], [corpus[5]])
            w.delete(["doc-1"])
            raise RuntimeError("boom")
    assert index.get(["new-doc"])[0] is None and index.get(["doc-1"])[0] is not None
    assert not [p for p in (index.path / "segments").iterdir() if ".tmp" in p.name]


def test_optimize_compacts_and_keeps_ids(index, corpus):
    index.delete([f"doc-{i}" for i in range(0, 1500, 2)])
    q = corpus[11][:8]
    before = ids_of(index.search(q, k=5))
    index.optimize()
    stats = index.stats()
    assert stats["deleted"] == 0 and stats["chunks"] == 750 and stats["segments"] == 1
    assert index.manifest.tombstones is None
    assert index.search(q, k=1)[0].id == "doc-11"
    assert len(set(before) & set(ids_of(index.search(q, k=5)))) >= 4
    assert len(list(index.iter_chunks())) == 750


def test_commit_user_data_is_published_with_its_commit_and_carried_on(index, corpus):
    """Lucene's commit user data: what the application records travels atomically with a
    commit (ingestion records files committed in part there), and later commits keep it."""
    assert index.manifest.user_data == {}
    with pytest.raises(RuntimeError):
        with index.writer() as w:
            w.set_user_data({"progress": 1})
            raise RuntimeError("boom")
    index.refresh()
    assert index.manifest.user_data == {}  # rolled back with the rest
    commit = index.commit
    with index.writer() as w:
        w.set_user_data({"progress": {"file": "a.jsonl"}})
        assert w.has_changes  # user data alone is a change: it gets a commit of its own
    assert index.commit == commit + 1 and index.manifest.user_data == {"progress": {"file": "a.jsonl"}}
    index.add(["late"], [corpus[3]])
    index.merge_segments(max_segments=1)
    index.optimize()
    assert MultiVectorIndex(index.path).manifest.user_data == {"progress": {"file": "a.jsonl"}}


def test_tiered_merge_never_builds_a_segment_above_the_segment_cap():
    """A merge finishes its segment in memory (inverted file, BM25): it takes the smallest
    segments only up to MAX_SEGMENT_CHUNKS together, and leaves full ones alone, however many
    there are (else an index of ten full segments merged eight of them, 800k chunks, on its
    next small write)."""
    from lfm2_retrieval.index.manifest import SegmentEntry
    from lfm2_retrieval.index.writer import MAX_SEGMENT_CHUNKS, MAX_SEGMENTS, MERGE_FACTOR, merge_candidates

    def entries(*sizes):
        return [SegmentEntry(f"seg-{i:03d}", n, 10 * n) for i, n in enumerate(sizes)]

    full = [MAX_SEGMENT_CHUNKS] * MAX_SEGMENTS
    assert merge_candidates(entries(*full, 5)) == []  # nothing pairs with a full segment
    assert merge_candidates(entries(*full, 5, 7)) == ["seg-010", "seg-011"]
    half = MAX_SEGMENT_CHUNKS // 2
    assert merge_candidates(entries(*full, half + 1, half)) == []  # together above the cap
    small = entries(*([1] * (MERGE_FACTOR + 4)), *full)
    chosen = merge_candidates(small)
    assert len(chosen) == MERGE_FACTOR and all(int(name[4:]) < MERGE_FACTOR + 4 for name in chosen)
    assert merge_candidates(entries(3, 2, 1), max_segments=1) == ["seg-002", "seg-001", "seg-000"]
    assert merge_candidates(entries(3, 2, 1), max_segments=3) == []


def test_empty_index_searches_to_nothing(tmp_path):
    idx = MultiVectorIndex.create(tmp_path / "empty", dim=DIM)
    assert idx.search(np.ones((2, DIM), np.float32), k=3) == []
    with pytest.raises(Exception, match="already exists"):
        MultiVectorIndex.create(tmp_path / "empty", dim=DIM)


@pytest.mark.slow
def test_bytes_per_token_at_nbits_2(tmp_path):
    docs = clustered_corpus(3000, dim=128, seed=5)
    idx = MultiVectorIndex.create(tmp_path / "size", dim=128, nbits=2)
    idx.add([str(i) for i in range(len(docs))], docs)
    tokens = sum(len(d) for d in docs)
    seg = tmp_path / "size" / "segments" / idx.manifest.segments[0].name
    vector_bytes = sum((seg / f).stat().st_size for f in ("codes.bin", "residuals.bin", "doc_offsets.npy",
                                                           "ivf_index.npy", "ivf_lists.npy"))
    assert vector_bytes / tokens <= 36


# ---------------------------------------------------------------------- crashes and concurrency

WRITER_SCRIPT = textwrap.dedent("""
    import sys, numpy as np
    sys.path[:0] = [{tests!r}, {tests!r} + "/.."]  # tests/ helpers, and eval/ beside them
    from index_helpers import clustered_corpus
    from lfm2_retrieval.index import MultiVectorIndex
    idx = MultiVectorIndex({path!r})
    docs = clustered_corpus(400, dim={dim}, seed=9)
    for batch in range(idx.commit, 1000):
        with idx.writer() as w:
            ids = [f"b{{batch}}-{{i}}" for i in range(20)]
            w.add(ids, docs[(batch * 20) % 380:(batch * 20) % 380 + 20], ids, [{{"batch": batch}}] * 20)
            if batch:
                w.delete([f"b{{batch - 1}}-0"])
        print("committed", batch, flush=True)
""")


def run_writer(path, env_extra=None):
    tests_dir = os.path.dirname(__file__)
    code = WRITER_SCRIPT.format(tests=tests_dir, path=str(path), dim=DIM)
    env = {**os.environ, **(env_extra or {})}
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=env)


def assert_consistent(path):
    idx = MultiVectorIndex(path)
    n_docs = len(idx)
    docs = list(idx.iter_chunks())
    assert len(docs) == n_docs
    batches = {}
    for d in docs:
        batches.setdefault(d["metadata"]["batch"], []).append(d["id"])
    for batch, ids in batches.items():
        # Every commit is all-or-nothing: 20 docs, minus the one the next commit deleted.
        assert len(ids) in (19, 20), (batch, len(ids))
    if docs:
        hit = idx.search(np.ones((2, DIM), np.float32) / np.sqrt(DIM), k=3)
        assert len(hit) == 3
    return idx


@pytest.mark.slow
@pytest.mark.parametrize("point", ["segment-written", "tombstones-written", "before-manifest", "after-manifest"])
def test_crash_at_every_commit_step_leaves_the_last_commit(tmp_path, point):
    path = tmp_path / "crash"
    MultiVectorIndex.create(path, dim=DIM, nbits=2)
    first = run_writer(path)  # a clean first commit, then stop it
    for line in first.stdout:
        if line.startswith("committed 1"):
            break
    first.send_signal(signal.SIGKILL)
    first.wait()
    before = MultiVectorIndex(path).commit
    proc = run_writer(path, {"LFM2_SEARCH_CRASH_AT": point})
    proc.wait(timeout=60)
    assert proc.returncode == 137
    idx = assert_consistent(path)
    expected = before + 1 if point == "after-manifest" else before
    assert idx.commit == expected
    # The lock died with the process, and the next writer cleans up and commits.
    with idx.writer() as w:
        w.add(["after-crash"], [np.ones((2, DIM), np.float32) / np.sqrt(DIM)], metadata=[{"batch": -1}])
    assert not [p for p in (path / "segments").iterdir() if ".tmp" in p.name]


@pytest.mark.slow
def test_kill_9_at_random_moments_never_corrupts(tmp_path):
    path = tmp_path / "kill"
    MultiVectorIndex.create(path, dim=DIM, nbits=2)
    rng = np.random.default_rng(0)
    for _ in range(6):
        proc = run_writer(path)
        proc.stdout.readline()  # it is committing now; kill it at a random moment after
        time.sleep(float(rng.uniform(0.0, 1.0)))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert_consistent(path)
    assert MultiVectorIndex(path).commit >= 6


@pytest.mark.slow
def test_readers_see_complete_snapshots_while_a_writer_commits(tmp_path):
    path = tmp_path / "live"
    MultiVectorIndex.create(path, dim=DIM, nbits=2)
    writer = run_writer(path)
    writer.stdout.readline()  # the writer is up and committing
    errors, checks = [], [0]
    stop = time.time() + 5

    def reader():
        idx = None
        while time.time() < stop:
            try:
                if idx is None:
                    if not (path / "manifest.json").exists():
                        continue
                    idx = MultiVectorIndex(path)
                idx.refresh()
                n = len(idx)
                if n:
                    hits = idx.search(np.ones((2, DIM), np.float32) / np.sqrt(DIM), k=50, filter={"batch": {"$gte": 0}})
                    assert len(hits) == min(50, n)
                    batches = {}
                    for d in idx.iter_chunks():
                        batches[d["metadata"]["batch"]] = batches.get(d["metadata"]["batch"], 0) + 1
                    assert all(c in (19, 20) for c in batches.values()), batches
                    assert sum(batches.values()) == n
                checks[0] += 1
            except Exception as exc:
                errors.append(repr(exc))
                return

    threads = [threading.Thread(target=reader) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    writer.send_signal(signal.SIGKILL)
    writer.wait()
    assert not errors, errors[:3]
    assert checks[0] > 10
    assert MultiVectorIndex(path).commit > 3


def test_many_threads_open_snapshots_at_once(tmp_path):
    """Opening reads .npy headers through ast.literal_eval, which CPython 3.11 cannot run in
    several threads at once; the index serialises those reads (a reader's refresh in a server)."""
    index = MultiVectorIndex.create(tmp_path / "idx", dim=DIM, nbits=2)
    rng = np.random.default_rng(0)
    for batch in range(3):
        index.add([f"d{batch}-{i}" for i in range(30)], [rng.standard_normal((4, DIM)).astype(np.float32)
                                                         for _ in range(30)])
    index.delete(["d0-1"])
    errors = []

    def opener():
        try:
            for _ in range(40):
                assert len(MultiVectorIndex(tmp_path / "idx")) == 89
        except Exception as exc:
            errors.append(repr(exc))

    threads = [threading.Thread(target=opener) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[:3]


def test_the_shared_budget_holds_with_ties_at_the_cut():
    """Ties at the n-th best score (common in stage 2's int16 scores) fill only what the chunks
    above the cut leave, the first segments' first; chunks above it are all kept, wherever they are."""
    from lfm2_retrieval.index.search import _best_across, _Found

    found = [_Found(0, np.arange(4), np.array([0.5, 0.5, 0.5, 0.1], np.float32)),
             _Found(1, np.arange(3), np.array([0.9, 0.8, 0.5], np.float32))]
    kept = _best_across(found, 4)
    assert sum(len(f.docs) for f in kept) == 4
    assert [(f.segment, f.docs.tolist()) for f in kept] == [(0, [0, 1]), (1, [0, 1])]
