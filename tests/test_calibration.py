"""`relevance` (engine/calibration.py): the logistic fit, the file beside the model, and the
engine giving each hit the probability its model's calibration says, in every front end."""

import json
import shutil

import numpy as np
import pytest
from fastapi.testclient import TestClient

from lfm2_retrieval.api import ApiSettings, create_app
from lfm2_retrieval.engine import SearchEngine, SearchRequest, TextDocument
from lfm2_retrieval.engine.calibration import FEATURES, Calibration, features, fit_logistic, reliability


def test_the_fit_recovers_the_weights_that_made_the_labels():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((20_000, 2))
    p = 1 / (1 + np.exp(-(1.5 * x[:, 0] - 2.0 * x[:, 1] - 1.0)))
    y = rng.random(len(p)) < p
    (w0, w1), b = fit_logistic(x, y, l2=0.0)
    assert abs(w0 - 1.5) < 0.1 and abs(w1 + 2.0) < 0.1 and abs(b + 1.0) < 0.1
    # Weights: a row counted twice is the same as the row weighing 2.
    twice = fit_logistic(np.vstack([x[:100], x[:50]]), np.r_[y[:100], y[:50]])
    weighted = fit_logistic(x[:100], y[:100], np.r_[np.full(50, 2.0), np.ones(50)])
    assert np.allclose(twice[0], weighted[0], atol=1e-6) and abs(twice[1] - weighted[1]) < 1e-6
    brier, ece, bins = reliability(p, y)
    assert ece < 0.02 and brier < 0.25 and sum(n for *_, n in bins) == len(p)


def test_the_file_round_trips_and_a_fit_on_other_features_is_left_out(tmp_path):
    calibration = Calibration({"semantic": ((1.0, -2.0, 0.5), -1.0), "lexical": ((0.5, -1.0, 2.0), -3.0)}, "test")
    calibration.save(tmp_path)
    assert Calibration.load(tmp_path) == calibration
    raw = json.loads((tmp_path / "calibration.json").read_text())
    raw["modes"]["lexical"]["features"] = ["bm25"]  # an older file's features
    (tmp_path / "calibration.json").write_text(json.dumps(raw))
    assert set(Calibration.load(tmp_path).weights) == {"semantic"}
    assert Calibration.load(tmp_path / "nowhere") is None
    x = features("hybrid", rank=[1, 2], margin=[1.0, 0.5], maxsim=[0.9, 0.8], bm25=[np.e - 1, 0.0])
    assert x.shape == (2, len(FEATURES["hybrid"])) and np.allclose(x[:, 1], [1.0, 0.0])  # log(1 + BM25)


@pytest.fixture(scope="module")
def calibrated_model(tmp_path_factory, pylate_tiny_dir):
    """The tiny model with a calibration of known weights."""
    folder = tmp_path_factory.mktemp("calibrated") / "model"
    shutil.copytree(pylate_tiny_dir, folder)
    Calibration({"semantic": ((4.0, -1.0, 1.0), -2.0), "lexical": ((1.0, -1.0, 1.0), -2.0),
                 "hybrid": ((2.0, 0.5, -1.0, 1.0), -2.0)}, "test").save(folder)
    return folder


def test_each_hit_gets_the_relevance_its_raw_scores_give(tmp_path, calibrated_model, pylate_tiny_dir):
    engine = SearchEngine.open(tmp_path / "idx", model=str(calibrated_model), create=True)
    engine.upsert([TextDocument(f"d{i}", text) for i, text in enumerate(
        ["Rotate the signing keys every month.", "The router resets when its button is held.",
         "Keys are kept in the vault.", "Chocolate cake needs cocoa."])])
    query = "rotate the keys"
    vectors = engine.encode_queries([query])
    for mode in ("semantic", "lexical", "hybrid"):
        result = engine.answer(SearchRequest(query=query, mode=mode, k=4)).results[0]
        assert result.relevance is not None and len(result.relevance) == len(result.hits), mode
        assert all(0.0 < p < 1.0 for p in result.relevance)
        if mode == "semantic":  # by hand: sigmoid(4 m - log rank + (m - m_first) - 2), m = MaxSim / vectors
            m = np.array([h.score for h in result.hits]) / len(vectors[0])
            z = 4 * m - np.log(np.arange(1, len(m) + 1)) + (m - m[0]) - 2
            assert np.allclose(result.relevance, 1 / (1 + np.exp(-z)), atol=1e-4)
    # A page further on keeps each hit's relevance from the whole ranking.
    first = engine.answer(SearchRequest(query=query, k=4)).results[0]
    page = engine.answer(SearchRequest(query=query, k=2, offset=2)).results[0]
    assert page.relevance == first.relevance[2:4]
    # The API and the clients carry it; a model without a calibration gives none.
    with TestClient(create_app(engine, ApiSettings(api_key=None))) as client:
        hits = client.post("/search", json={"query": query}).json()["results"][0]["hits"]
        assert [h["relevance"] for h in hits] == first.relevance
    plain = SearchEngine.open(tmp_path / "idx", model=str(pylate_tiny_dir))
    assert plain.answer(SearchRequest(query=query)).results[0].relevance is None


def test_the_embedded_model_ships_a_calibration():
    from lfm2_retrieval.model.locations import EMBEDDED_MODEL_DIR

    calibration = Calibration.load(EMBEDDED_MODEL_DIR)
    assert calibration is not None and set(calibration.weights) == {"semantic", "lexical", "hybrid"}


def test_langchain_and_llamaindex_thresholds_read_the_relevance(tmp_path, calibrated_model):
    """score_threshold, LangChain's relevance scores and LlamaIndex's node scores are the hits'
    calibrated relevance: one threshold means the same for every query."""
    pytest.importorskip("langchain_core", reason="the LangChain integration needs langchain-core")
    pytest.importorskip("llama_index.core", reason="the LlamaIndex integration needs llama-index-core")
    from lfm2_retrieval.client import LocalClient
    from lfm2_retrieval.integrations.langchain import LFM2Retriever, LFM2SearchVectorStore
    from lfm2_retrieval.integrations.llamaindex import LFM2Retriever as LlamaRetriever

    engine = SearchEngine.open(tmp_path / "idx", model=str(calibrated_model), create=True)
    engine.upsert([TextDocument(f"d{i}", f"Note {i}: rotate the signing keys of system {i}.") for i in range(8)])
    local = LocalClient(engine)
    relevance = [h.relevance for h in local.search("rotate the keys", k=8)]
    cut = sorted(relevance)[3]
    kept = LFM2Retriever(client=local, search_type="similarity_score_threshold",
                         search_kwargs={"k": 8, "score_threshold": cut}).invoke("rotate the keys")
    assert [d.metadata["relevance"] for d in kept] == [p for p in relevance if p >= cut]
    store = LFM2SearchVectorStore(local)
    scored = store.similarity_search_with_relevance_scores("rotate the keys", k=8)
    assert [score for _, score in scored] == relevance
    nodes = LlamaRetriever(local, k=8).retrieve("rotate the keys")
    assert [n.score for n in nodes] == relevance
