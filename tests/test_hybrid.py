"""Hybrid search: fusion math, the lexical index kept by the same commits, and the three modes."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from lfm2_retrieval.api import ApiSettings, create_app
from lfm2_retrieval.engine import SearchEngine, TextDocument
from lfm2_retrieval.engine.fusion import (
    DEFAULT_ALPHA,
    DEFAULT_FUSION,
    fuse,
    interpolate,
    reciprocal_rank_fusion,
    resolve,
)
from lfm2_retrieval.index import MultiVectorIndex

DIM = 16


# ---------------------------------------------------------------------- fusion math
def test_reciprocal_rank_fusion():
    fused = dict(reciprocal_rank_fusion([[("a", 9.0), ("b", 5.0)], [("b", 30.0), ("c", 1.0)]], k=60))
    assert fused["b"] == pytest.approx(1 / 62 + 1 / 61)
    assert fused["a"] == pytest.approx(1 / 61) and fused["c"] == pytest.approx(1 / 62)
    assert [d for d, _ in fuse([("a", 9.0), ("b", 5.0)], [("b", 30.0), ("c", 1.0)], "rrf")] == ["b", "a", "c"]


def test_fusion_settings_resolve_to_one_method():
    assert resolve() == (DEFAULT_FUSION, DEFAULT_ALPHA if DEFAULT_FUSION == "interpolation" else None)
    assert resolve(alpha=0.7) == ("interpolation", 0.7)  # an alpha alone means interpolation
    assert resolve("interpolation") == ("interpolation", DEFAULT_ALPHA)
    assert resolve("rrf") == ("rrf", None)
    for bad in [dict(fusion="rrf", alpha=0.5), dict(fusion="borda"), dict(alpha=-0.1)]:
        with pytest.raises(ValueError):
            resolve(**bad)
    sem, lex = [("a", 3.0), ("b", 2.0), ("c", 1.0)], [("c", 9.0), ("d", 1.0)]
    assert fuse(sem, lex) == interpolate(sem, lex, DEFAULT_ALPHA) if DEFAULT_FUSION == "interpolation" else True
    assert fuse(sem, lex, alpha=0.9) == interpolate(sem, lex, 0.9)


def test_interpolation_normalises_each_side():
    sem = [("a", 30.0), ("b", 20.0), ("c", 10.0)]
    lex = [("c", 8.0), ("d", 4.0)]
    fused = dict(interpolate(sem, lex, alpha=0.5))
    assert fused["a"] == pytest.approx(0.5) and fused["b"] == pytest.approx(0.25)
    assert fused["c"] == pytest.approx(0.5 * 0 + 0.5 * 1) and fused["d"] == pytest.approx(0.0)
    assert [d for d, _ in interpolate(sem, lex, 1.0)][:3] == ["a", "b", "c"]  # semantic only
    assert [d for d, _ in interpolate(sem, lex, 0.0)][0] == "c"  # lexical only
    with pytest.raises(ValueError):
        interpolate(sem, lex, 1.5)
    assert interpolate([], [], 0.5) == [] and dict(interpolate([("x", 2.0)], [], 0.5)) == {"x": 0.5}


# ---------------------------------------------------------------------- the lexical index
def unit(n: int, seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_lexical_index_follows_adds_deletes_upserts_and_filters(tmp_path):
    index = MultiVectorIndex.create(tmp_path / "idx", dim=DIM, nbits=2)
    texts = {f"d{i}": f"ordinary text number {i} about rivers" for i in range(40)}
    texts["code"] = "the error code E-4012 means the pump failed"
    texts["cjk"] = "東京タワーの高さは333メートルです"
    ids = list(texts)
    index.add(ids, [unit(6, i) for i in range(len(ids))], [texts[i] for i in ids],
              [{"n": i} for i in range(len(ids))])
    assert [h.id for h in index.search_lexical(["E-4012"], k=3)[0]] == ["code"]
    assert index.search_lexical(["東京タワー"], k=3)[0][0].id == "cjk"
    assert index.search_lexical(["nothing matches zzzz"], k=3)[0] == []
    assert index.search_lexical(["rivers"], k=5, filter={"n": {"$lt": 3}})[0][0].metadata["n"] < 3

    index.delete(["code"])
    assert index.search_lexical(["E-4012"], k=3)[0] == []
    index.upsert(["d1"], [unit(6, 99)], ["now about volcanoes instead"])
    assert [h.id for h in index.search_lexical(["volcanoes"], k=3)[0]] == ["d1"]
    assert "d1" not in {h.id for h in index.search_lexical(["rivers"], k=50)[0]}  # the old text is gone
    index.optimize()  # rebuilt segments keep their lexical index
    assert [h.id for h in index.search_lexical(["volcanoes"], k=3)[0]] == ["d1"]


CRASHING_ADD = """
import sys, numpy as np
from lfm2_retrieval.index import MultiVectorIndex
v = np.ones((3, %d), np.float32) / np.sqrt(%d)
MultiVectorIndex(sys.argv[1]).add(["new"], [v], ["a brandnewword appears"])
""" % (DIM, DIM)


def test_lexical_scores_do_not_depend_on_how_the_index_is_split(tmp_path):
    """A word common in the collection but rare in a small segment (an edited file re-indexed
    alone) once made that segment's chunks win: BM25 statistics were per segment. Texts of one
    length, so that only IDF could differ: split and merged, the scores are the same."""
    index = MultiVectorIndex.create(tmp_path / "idx", dim=DIM, nbits=2)
    big = {f"how{i}": f"how to do thing {i:03d} here" for i in range(60)}
    big["cors"] = "enable cors headers for the api"
    index.add(list(big), [unit(4, i) for i in range(len(big))], list(big.values()))
    small = {"edited": "how to do nothing much here", "other": "pictures of cats and small dogs"}
    index.add(list(small), [unit(4, 100 + i) for i in range(2)], list(small.values()))  # a second segment
    assert index.stats()["segments"] == 2
    query = "how do I enable cors"
    split = {h.id: h.score for h in index.search_lexical([query], k=100)[0]}
    assert next(iter(split)) == "cors"  # "how" is common: the rare words decide
    index.optimize()
    merged = {h.id: h.score for h in index.search_lexical([query], k=100)[0]}
    assert set(split) == set(merged)
    for doc_id, score in merged.items():
        assert split[doc_id] == pytest.approx(score, rel=1e-4), doc_id


@pytest.mark.slow
@pytest.mark.parametrize("point", ["segment-written", "before-manifest"])
def test_crash_mid_commit_leaves_both_indexes_consistent(tmp_path, point):
    index = MultiVectorIndex.create(tmp_path / "idx", dim=DIM, nbits=2)
    index.add([f"d{i}" for i in range(20)], [unit(4, i) for i in range(20)], [f"old text {i}" for i in range(20)])
    env = {**os.environ, "LFM2_SEARCH_CRASH_AT": point, "PYTHONPATH": str(Path(__file__).parents[1])}
    proc = subprocess.run([sys.executable, "-c", CRASHING_ADD, str(tmp_path / "idx")], env=env)
    assert proc.returncode == 137
    index = MultiVectorIndex(tmp_path / "idx")
    assert len(index) == 20
    assert index.search_lexical(["brandnewword"], k=5)[0] == []  # neither side saw the lost commit
    assert "new" not in {h.id for h in index.search(np.ones((3, DIM), np.float32) / 4, k=25)}
    subprocess.run([sys.executable, "-c", CRASHING_ADD, str(tmp_path / "idx")], check=True,
                   env={**env, "LFM2_SEARCH_CRASH_AT": ""})
    index.refresh()
    assert [h.id for h in index.search_lexical(["brandnewword"], k=5)[0]] == ["new"]
    assert "new" in {h.id for h in index.search(np.ones((3, DIM), np.float32) / 4, k=25)}


# ---------------------------------------------------------------------- the three modes
@pytest.fixture(scope="module")
def engine(tmp_path_factory, pylate_tiny_dir):
    engine = SearchEngine.open(tmp_path_factory.mktemp("hybrid") / "idx", model=str(pylate_tiny_dir), create=True)
    docs = [TextDocument(f"doc{i}", f"A general note number {i} about gardens and weather.") for i in range(30)]
    docs.append(TextDocument("manual", "Fault XK-77Q: replace the valve gasket.", {"kind": "manual"}))
    engine.upsert(docs)
    return engine


def test_lexical_only_documents_are_found(engine):
    lexical = engine.search(["XK-77Q"], k=3, mode="lexical")[0]
    assert [h.id for h in lexical] == ["manual#0"]
    for settings in ({}, {"alpha": 0.3}, {"fusion": "rrf"}):
        hybrid = engine.search(["XK-77Q"], k=5, mode="hybrid", **settings)[0]
        assert "manual#0" in [h.id for h in hybrid]
    with pytest.raises(ValueError):
        engine.search(["x"], mode="hybrid", fusion="rrf", alpha=0.5)
    assert len(engine.search(["gardens"], k=5, mode="semantic")[0]) == 5
    with pytest.raises(ValueError):
        engine.search(["x"], mode="fuzzy")


def test_modes_over_http(engine):
    with TestClient(create_app(engine, ApiSettings(api_key=None))) as client:
        r = client.post("/search", json={"query": "XK-77Q", "mode": "lexical", "k": 2})
        assert r.status_code == 200 and r.json()["results"][0]["hits"][0]["id"] == "manual#0"
        r = client.post("/search", json={"query": "XK-77Q", "mode": "hybrid", "alpha": 0.2, "k": 5})
        assert "manual#0" in [h["id"] for h in r.json()["results"][0]["hits"]]
        assert client.post("/search", json={"query": "x", "mode": "hybrid", "alpha": 2}).status_code == 422
        for body in ({"fusion": "rrf"}, {"fusion": "interpolation"}, {"fusion": "interpolation", "alpha": 0.9}):
            r = client.post("/search", json={"query": "XK-77Q", "mode": "hybrid", "k": 5, **body})
            assert "manual#0" in [h["id"] for h in r.json()["results"][0]["hits"]], body
        default = client.post("/search", json={"query": "XK-77Q", "k": 5}).json()  # hybrid unless told otherwise
        assert "manual#0" in [h["id"] for h in default["results"][0]["hits"]]
        r = client.post("/search", json={"query": "x", "mode": "hybrid", "fusion": "rrf", "alpha": 0.5})
        assert r.status_code == 422 and "rrf" in r.text
        assert client.post("/search", json={"query": "x", "mode": "hybrid", "fusion": "borda"}).status_code == 422
        assert client.post("/search", json={"query": "x", "mode": "fuzzy"}).status_code == 422


def test_cli_modes(engine):
    from typer.testing import CliRunner

    from lfm2_retrieval.cli import app

    runner = CliRunner()
    out = runner.invoke(app, ["search", "XK-77Q", "--index", str(engine.index.path), "--mode", "hybrid", "--json"])
    assert out.exit_code == 0 and "manual#0" in out.output
    rrf = runner.invoke(app, ["search", "XK-77Q", "--index", str(engine.index.path), "--mode", "hybrid",
                              "--fusion", "rrf", "--json"])
    assert rrf.exit_code == 0 and "manual#0" in rrf.output
    bad = runner.invoke(app, ["search", "x", "--index", str(engine.index.path), "--mode", "semantic", "--alpha", "0.5"])
    assert bad.exit_code == 1 and "apply to mode hybrid only" in bad.output
    # Hybrid is the default: the code is found without --mode, and --alpha applies to it.
    default = runner.invoke(app, ["search", "XK-77Q", "--index", str(engine.index.path), "--alpha", "0.5", "--json"])
    assert default.exit_code == 0 and "manual#0" in default.output
    bad = runner.invoke(app, ["search", "x", "--index", str(engine.index.path), "--mode", "hybrid",
                              "--fusion", "rrf", "--alpha", "0.5"])
    assert bad.exit_code == 1 and "rrf" in bad.output
