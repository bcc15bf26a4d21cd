"""One search request (engine/request.py), validated once, the same for the library, the CLI, the
HTTP API and the clients; pages by offset."""

import json
import re

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from lfm2_retrieval.api import ApiSettings, create_app
from lfm2_retrieval.cli import app
from lfm2_retrieval.client import InvalidRequest, LocalClient
from lfm2_retrieval.engine import SearchEngine, SearchRequest, TextDocument
from lfm2_retrieval.errors import FilterError, InvalidRequestError
from lfm2_retrieval.index import filters

BAD = [  # (fields, words of the one message every front end gives)
    (dict(mode="semantic", alpha=0.5), "apply to mode hybrid only"),
    (dict(mode="lexical", fusion="rrf"), "apply to mode hybrid only"),
    (dict(fusion="rrf", alpha=0.5), "not to rrf"),
    (dict(k=0), "greater than or equal to 1"),
    (dict(k=600, offset=500), "k + offset"),
    (dict(mode="fuzzy"), "'semantic', 'lexical', 'dense' or 'hybrid'"),
]


@pytest.fixture(scope="module")
def engine(tmp_path_factory, pylate_tiny_dir):
    engine = SearchEngine.open(tmp_path_factory.mktemp("request") / "idx", model=str(pylate_tiny_dir), create=True)
    engine.upsert([TextDocument(f"doc{i}", f"Note {i} about gardens, weather and soil number {i}.",
                                {"lang": "en" if i % 2 else "fr"}) for i in range(40)])
    yield engine
    engine.close()


@pytest.mark.parametrize("fields,words", BAD)
def test_every_front_end_refuses_the_same_requests_with_the_same_words(engine, fields, words):
    with pytest.raises(InvalidRequestError, match=re.escape(words)):
        engine.search(["gardens"], **fields)  # the library once ignored alpha outside hybrid
    with pytest.raises(InvalidRequest, match=re.escape(words)):
        LocalClient(engine).search("gardens", **fields)
    with TestClient(create_app(engine, ApiSettings(api_key=None))) as client:
        answer = client.post("/search", json={"query": "gardens", **fields})
    assert answer.status_code == 422 and words in answer.json()["message"], answer.text
    args = ["search", "gardens", "--index", str(engine.path)]
    for name, value in fields.items():
        args += ["-k" if name == "k" else f"--{name}", str(value)]
    cli = CliRunner().invoke(app, args)
    assert cli.exit_code == 1 and words in " ".join(cli.output.split()), cli.output


def test_a_bad_filter_is_400_invalid_filter_everywhere(engine):
    bad = {"lang": {"$like": "e"}}
    with pytest.raises(FilterError, match="unknown operator"):
        SearchRequest.of(query="x", filter=bad)
    with TestClient(create_app(engine, ApiSettings(api_key=None))) as client:
        answer = client.post("/search", json={"query": "x", "filter": bad})
    assert answer.status_code == 400 and answer.json()["error"] == "invalid_filter"
    with pytest.raises(InvalidRequest) as caught:
        LocalClient(engine).search("x", filter=bad)
    assert caught.value.status == 400 and caught.value.error == "invalid_filter"


def test_a_filter_is_checked_once_per_request_however_many_segments(engine, monkeypatch):
    engine.upsert([TextDocument("extra", "gardens again", {"lang": "en"})])  # a second segment
    assert engine.segment_count >= 2
    calls = []
    real = filters._validate
    monkeypatch.setattr(filters, "_validate", lambda f, depth: calls.append(depth) or real(f, depth))
    for mode in ("semantic", "lexical", "hybrid"):
        calls.clear()
        engine.answer(SearchRequest(query="gardens", filter={"lang": "en"}, mode=mode))
        assert calls == [1], mode


def test_query_texts_are_text(engine):
    """A lone surrogate is refused by the library as by HTTP (it once was replaced in one and
    refused in the other); blank queries are refused with one message."""
    with pytest.raises(InvalidRequestError, match="unicode"):
        engine.search(["gardens \ud800", "weather"], k=2, mode="lexical")
    with pytest.raises(InvalidRequestError, match="the query is empty"):
        SearchRequest.of(queries=["fine", "   "])


@pytest.mark.parametrize("mode", ["semantic", "lexical", "hybrid"])
def test_offset_pages_through_the_same_ranking(engine, mode):
    first = engine.search(["gardens weather"], k=12, mode=mode)[0]
    assert len(first) == 12
    page = engine.search(["gardens weather"], k=4, offset=4, mode=mode)[0]
    assert [h.id for h in page] == [h.id for h in first[4:8]]
    documents = engine.search(["gardens weather"], k=6, mode=mode, per_document=True)[0]
    second = engine.search(["gardens weather"], k=3, offset=3, mode=mode, per_document=True)[0]
    assert [h.id for h in second] == [h.id for h in documents[3:6]]


def test_offset_over_http_and_the_cli(engine):
    with TestClient(create_app(engine, ApiSettings(api_key=None))) as client:
        whole = client.post("/search", json={"query": "soil", "k": 6, "mode": "lexical"}).json()
        page = client.post("/search", json={"query": "soil", "k": 3, "offset": 3, "mode": "lexical"}).json()
    assert [h["id"] for h in page["results"][0]["hits"]] == [h["id"] for h in whole["results"][0]["hits"][3:]]
    out = CliRunner().invoke(app, ["search", "soil", "--index", str(engine.path), "--mode", "lexical", "-k", "3",
                                   "--offset", "3", "--json"])
    assert out.exit_code == 0, out.output
    assert [h["id"] for h in json.loads(out.output)["results"][0]["hits"]] == [
        h["id"] for h in whole["results"][0]["hits"][3:]]


def test_the_library_takes_any_number_of_queries(engine):
    queries = [f"note {i}" for i in range(70)]  # one HTTP request holds at most 64
    assert len(engine.search(queries, k=1, mode="lexical")) == 70
    assert engine.search([], k=1) == []


def test_and_filters_and_ranges_of_the_wrong_kind(engine):
    both = {"$and": [{"lang": {"$ne": "fr"}}, {"lang": {"$in": ["en", "fr"]}}]}
    hits = engine.search(["gardens"], k=5, filter=both, mode="lexical")[0]
    assert hits and all(h.metadata["lang"] == "en" for h in hits)
    with TestClient(create_app(engine, ApiSettings(api_key=None))) as client:
        answer = client.post("/search", json={"query": "gardens", "filter": {"lang": {"$gt": 3}}})
    assert answer.status_code == 400 and answer.json()["error"] == "invalid_filter"
    assert "holds text" in answer.json()["message"]
