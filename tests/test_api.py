"""The HTTP API through FastAPI's TestClient: every endpoint, its errors, auth and limits."""

import threading
import time

import numpy as np
import pytest
from fastapi.testclient import TestClient

from lfm2_retrieval.api import ApiSettings, QueryBatcher, create_app
from lfm2_retrieval.engine import SearchEngine, TextDocument

DOCS = [
    TextDocument("volcano", "Volcanoes erupt when magma pressure exceeds the crust.", {"lang": "en", "year": 2020}),
    TextDocument("tide", "Tides follow the moon and the sun.", {"lang": "en", "year": 2018}),
    TextDocument("riviere", "Les rivières coulent vers la mer.", {"lang": "fr", "year": 2022}),
]


@pytest.fixture(scope="module")
def engine(tmp_path_factory, pylate_tiny_dir):
    engine = SearchEngine.open(tmp_path_factory.mktemp("api") / "idx", model=str(pylate_tiny_dir), create=True)
    engine.upsert(DOCS)
    return engine


@pytest.fixture()
def client(engine):
    with TestClient(create_app(engine, ApiSettings(api_key=None))) as c:
        yield c


def test_search_one_query(client):
    r = client.post("/search", json={"query": "magma and volcanoes", "k": 2})
    assert r.status_code == 200, r.text
    body = r.json()
    (result,) = body["results"]
    assert result["query"] == "magma and volcanoes" and len(result["hits"]) == 2
    hit = result["hits"][0]
    assert set(hit) == {"id", "score", "text", "metadata"} and hit["metadata"]["doc_id"] in {
        "volcano",
        "tide",
        "riviere",
    }
    assert body["commit"] >= 1 and body["took_ms"] > 0


def test_search_many_queries_and_filters(client):
    r = client.post("/search", json={"queries": ["sea", "moon"], "k": 3, "filter": {"lang": "fr"}})
    assert r.status_code == 200
    results = r.json()["results"]
    assert [x["query"] for x in results] == ["sea", "moon"]
    assert all(h["metadata"]["lang"] == "fr" for x in results for h in x["hits"])
    r = client.post("/search", json={"query": "x", "filter": {"year": {"$gte": 2019, "$lt": 2021}}})
    assert [h["id"] for h in r.json()["results"][0]["hits"]] == ["volcano#0"]


@pytest.mark.parametrize("body, status, error", [
    ({}, 422, "invalid_request"),
    ({"query": ""}, 422, "invalid_request"),
    ({"query": "   "}, 422, "invalid_request"),
    ({"query": "a", "queries": ["b"]}, 422, "invalid_request"),
    ({"query": "a", "k": 0}, 422, "invalid_request"),
    ({"query": "a", "k": 100000}, 422, "invalid_request"),
    ({"query": "x" * 5000}, 422, "invalid_request"),
    ({"queries": []}, 422, "invalid_request"),
    ({"query": "a", "unknown": 1}, 422, "invalid_request"),
    ({"query": "a", "filter": {"year": {"$regex": "x"}}}, 400, "invalid_filter"),
    ({"query": "a", "filter": {"$and": []}}, 400, "invalid_filter"),
    ({"query": "a", "filter": {"year": 2**70}}, 400, "invalid_filter"),  # once an OverflowError and a 500
    ({"query": "a", "k": "10"}, 422, "invalid_request"),  # once silently coerced
    ({"query": "a", "mode": "semantic", "alpha": 0.5}, 422, "invalid_request"),  # once silently ignored
    ({"query": "a", "mode": "lexical", "fusion": "rrf"}, 422, "invalid_request"),
])
def test_bad_searches_get_clear_4xx(client, body, status, error):
    r = client.post("/search", json=body)
    assert r.status_code == status, r.text
    assert r.json()["error"] == error and r.json()["message"]


def test_malformed_json_and_wrong_methods(client):
    r = client.post("/search", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 422 and r.json()["error"] == "invalid_request"
    assert client.get("/search").status_code == 405
    assert client.get("/nowhere").json()["error"] == "not_found"


def test_odd_text(client):
    r = client.post("/search", json={"query": "café 日本語 مرحبا \u0000 🙂"})
    assert r.status_code == 200, r.text
    # A lone surrogate is legal JSON but not text: refused clearly, never a 500.
    r = client.post("/search", content='{"query": "caf\\ud800"}'.encode(), headers={"content-type": "application/json"})
    assert r.status_code == 422 and "unicode" in r.json()["message"]


def test_add_replace_and_delete_documents(client, engine):
    before = client.get("/health").json()["index"]
    long_text = " ".join(f"sentence {i} about lighthouses on rocky coasts." for i in range(200))
    r = client.post("/documents", json={"documents": [
        {"id": "lighthouse", "text": long_text, "metadata": {"lang": "en", "tags": "coast"}}]})
    assert r.status_code == 200, r.text
    added = r.json()
    assert added["documents"] == 1 and added["chunks"] > 1
    hits = client.post("/search", json={"query": "lighthouses", "k": 100, "filter": {"tags": "coast"}}).json()
    chunk_ids = {h["id"] for h in hits["results"][0]["hits"]}
    assert len(chunk_ids) == added["chunks"] and "lighthouse#0" in chunk_ids

    # upsert=false refuses an existing id; the default replaces it (all chunks).
    r = client.post("/documents", json={"documents": [{"id": "lighthouse", "text": "short"}], "upsert": False})
    assert r.status_code == 409 and r.json()["error"] == "already_exists"
    r = client.post("/documents", json={"documents": [{"id": "lighthouse", "text": "A short note."}]})
    assert r.json()["chunks"] == 1
    assert engine.chunk_ids(["lighthouse"]) == {"lighthouse": ["lighthouse#0"]}

    r = client.delete("/documents/lighthouse")
    assert r.status_code == 200 and r.json()["deleted_chunks"] == 1
    after = client.get("/health").json()["index"]
    # Counts come back down: chunks and tokens, replaced and deleted ones included.
    assert (after["chunks"], after["tokens"]) == (before["chunks"], before["tokens"])
    assert client.delete("/documents/lighthouse").status_code == 404
    assert client.get("/health").json()["index"]["commit"] == after["commit"]  # a 404 commits nothing


def test_a_document_id_that_looks_like_a_chunk_id_deletes_that_document_only(client, engine):
    """Documents "X" (several chunks) and "X#1": deleting "X#1" once also took chunk 1 of "X"."""
    long_text = " ".join(f"sentence {i} about harbours and their cranes." for i in range(200))
    client.post("/documents", json={"documents": [{"id": "X", "text": long_text}, {"id": "X#1", "text": "Short."}]})
    before = len(engine.chunk_ids(["X"])["X"])
    assert before > 1
    r = client.delete("/documents/X%231")  # "#" percent-encoded, as a URL needs
    assert r.status_code == 200 and r.json()["deleted_chunks"] == 1
    assert len(engine.chunk_ids(["X"])["X"]) == before and "X#1" not in engine.chunk_ids(["X#1"])
    # A retry after X#1 is gone deletes nothing else (before, it took chunk 1 of "X").
    commit = client.get("/health").json()["index"]["commit"]
    assert client.delete("/documents/X%231").status_code == 404
    assert len(engine.chunk_ids(["X"])["X"]) == before
    assert client.delete("/documents/X%230").status_code == 404  # a chunk id is not a document id
    assert client.get("/health").json()["index"]["commit"] == commit
    # Chunks are deleted by chunk id, under their own path; a retry is a 404 there too.
    r = client.delete("/chunks/X%230")
    assert r.status_code == 200 and r.json()["deleted_chunks"] == 1 and r.json()["commit"] == commit + 1
    assert len(engine.chunk_ids(["X"])["X"]) == before - 1
    assert client.delete("/chunks/X%230").status_code == 404
    assert client.delete("/chunks/X").status_code == 404  # a document id is not a chunk id


def test_one_hit_per_document(client, engine):
    """A long page's chunks crowd a chunk ranking; per_document keeps each document's best chunk."""
    long_text = " ".join(f"Tide tables, part {i}: the tide rises and falls twice a day." for i in range(150))
    client.post("/documents", json={"documents": [{"id": "tides", "text": long_text},
                                                  {"id": "moon", "text": "The moon pulls the tide."},
                                                  {"id": "cats", "text": "Cats sleep most of the day."}]})
    chunks = client.post("/search", json={"query": "tide", "k": 5}).json()["results"][0]["hits"]
    docs = client.post("/search", json={"query": "tide", "k": 5, "per_document": True}).json()["results"][0]["hits"]
    assert len({h["metadata"]["doc_id"] for h in chunks}) < len(chunks)  # the long page repeats
    assert len({h["metadata"]["doc_id"] for h in docs}) == len(docs) and {"tides", "moon"} <= {
        h["metadata"]["doc_id"] for h in docs
    }
    by_doc = {h["metadata"]["doc_id"]: h for h in docs}
    assert by_doc["tides"]["metadata"]["matched_chunks"] > 1 and by_doc["moon"]["metadata"]["matched_chunks"] == 1
    assert docs == sorted(docs, key=lambda h: -h["score"])
    grouped = client.post("/search", json={"query": "tide", "k": 5, "group_by": "document"}).json()["results"][0][
        "hits"
    ]
    assert grouped == docs  # group_by: "document" is per_document under its other common name
    lexical = client.post("/search", json={"query": "tide", "k": 2, "per_document": True, "mode": "lexical"}).json()
    assert len(lexical["results"][0]["hits"]) == 2


def test_ids_with_slashes(client):
    r = client.post("/documents", json={"documents": [{"id": "docs/a b/c.md", "text": "path-like id"}]})
    assert r.status_code == 200
    assert client.delete("/documents/docs/a b/c.md").json()["deleted_chunks"] == 1


@pytest.mark.parametrize("document, fragment", [
    ({"id": "x", "text": "  "}, "text"),
    ({"id": "", "text": "t"}, "id"),
    ({"id": " x", "text": "t"}, "id"),
    ({"id": "x", "text": "t", "metadata": {"doc_id": "y"}}, "reserved"),
    ({"id": "x", "text": "t", "metadata": {"nested": {"a": 1}}}, "metadata"),
    ({"id": "x", "text": "t", "metadata": {"tags": ["a", "b"]}}, "metadata"),
    ({"id": "x", "text": "t", "metadata": {"blob": "x" * 5000}}, "metadata"),  # stored with every chunk
])
def test_bad_documents_get_422(client, document, fragment):
    r = client.post("/documents", json={"documents": [document]})
    assert r.status_code == 422, r.text
    assert fragment in r.text


def test_one_request_cannot_hold_the_server_for_minutes(client):
    """A 1,000,000-character text was once accepted and took 160 s to encode."""
    from lfm2_retrieval.api.schemas import MAX_DOCUMENT_CHARS, MAX_REQUEST_CHARS

    r = client.post("/documents", json={"documents": [{"id": "big", "text": "word " * (MAX_DOCUMENT_CHARS // 5 + 1)}]})
    assert r.status_code == 422 and "text" in r.text
    many = [
        {"id": f"d{i}", "text": "w" * MAX_DOCUMENT_CHARS} for i in range(MAX_REQUEST_CHARS // MAX_DOCUMENT_CHARS + 1)
    ]
    r = client.post("/documents", json={"documents": many})
    assert r.status_code == 422 and "lfm2-search index" in r.json()["message"]


def test_duplicate_ids_in_one_request(client):
    r = client.post("/documents", json={"documents": [{"id": "d", "text": "a"}, {"id": "d", "text": "b"}]})
    assert r.status_code == 422


def test_health(client, engine):
    r = client.get("/health")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ok" and body["model"]["dim"] == engine.encoder.dim
    assert body["index"]["chunks"] == len(engine.index)


def test_api_key(engine):
    with TestClient(create_app(engine, ApiSettings(api_key="s3cret"))) as c:
        assert c.get("/health").status_code == 200  # liveness stays open
        r = c.post("/search", json={"query": "moon"})
        assert r.status_code == 401 and r.json()["error"] == "unauthorized"
        assert r.headers["www-authenticate"] == "Bearer"
        assert c.post("/search", json={"query": "moon"}, headers={"Authorization": "Bearer nope"}).status_code == 401
        ok = c.post("/search", json={"query": "moon"}, headers={"Authorization": "Bearer s3cret"})
        assert ok.status_code == 200
        assert c.delete("/documents/tide").status_code == 401


def test_body_size_limit(engine):
    with TestClient(create_app(engine, ApiSettings(api_key=None, max_body_bytes=2000))) as c:
        r = c.post("/documents", json={"documents": [{"id": "big", "text": "x " * 5000}]})
        assert r.status_code == 413 and r.json()["error"] == "body_too_large"

        def chunked():  # no Content-Length: counted as it streams
            yield b'{"query": "'
            for _ in range(100):
                yield b"y" * 100
            yield b'"}'
        r = c.post("/search", content=chunked(), headers={"content-type": "application/json"})
        assert r.status_code == 413


def test_batcher_merges_concurrent_queries():
    calls = []

    def encode(texts):
        calls.append(len(texts))
        return [np.full((2, 4), len(t), np.float32) for t in texts]

    batcher = QueryBatcher(encode, max_batch=64, window_s=0.05)
    results = {}

    def ask(i):
        results[i] = batcher.encode(["q" * i])

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(1, 9)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    batcher.close()
    assert all(results[i][0][0, 0] == i for i in range(1, 9))  # each caller gets its own vectors
    assert sum(calls) == 8 and len(calls) < 8  # and they shared forward passes


def test_batcher_does_not_wait_for_company_when_a_request_is_alone():
    """With no other request being served, a query is encoded at once, not after the window;
    with others being served, the window still gathers theirs into one pass."""
    calls = []

    def encode(texts):
        calls.append(len(texts))
        return [np.zeros((1, 2), np.float32) for _ in texts]

    busy = {"others": False}
    batcher = QueryBatcher(encode, window_s=0.5, alone=lambda: not busy["others"])
    started = time.perf_counter()
    batcher.encode(["alone"])
    assert time.perf_counter() - started < 0.25  # not the 0.5 s window
    busy["others"] = True
    results = {}
    threads = [threading.Thread(target=lambda i=i: results.update({i: batcher.encode([f"q{i}"])})) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    batcher.close()
    assert len(results) == 4 and calls[0] == 1 and sum(calls[1:]) == 4 and len(calls) < 5


def test_batcher_isolates_a_failing_request():
    def encode(texts):
        if "bad" in texts:
            raise ValueError("bad query")
        return [np.zeros((1, 2), np.float32) for _ in texts]

    batcher = QueryBatcher(encode, window_s=0.05)
    out = {}

    def ask(q):
        try:
            out[q] = batcher.encode([q])
        except ValueError as exc:
            out[q] = exc

    threads = [threading.Thread(target=ask, args=(q,)) for q in ("good", "bad", "fine")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    batcher.close()
    assert isinstance(out["bad"], ValueError) and len(out["good"]) == 1 and len(out["fine"]) == 1


def test_docs_pages_work_offline(client):
    """/docs and /redoc load their scripts from this server, never from a CDN."""
    import re

    for page in ("/docs", "/redoc"):
        response = client.get(page)
        assert response.status_code == 200
        assets = re.findall(r'(?:src|href)="([^"]+\.(?:js|css))"', response.text)
        assert assets and all(a.startswith("/") for a in assets), assets
        for asset in assets:
            served = client.get(asset)
            assert served.status_code == 200 and len(served.content) > 10_000, asset
    assert client.get("/openapi.json").json()["paths"]["/search"]


def test_explain_shows_which_chunk_tokens_won_each_query_token(client, engine):
    r = client.post("/search", json={"query": "volcanoes and magma", "k": 2, "mode": "semantic", "explain": True})
    assert r.status_code == 200, r.text
    for hit in r.json()["results"][0]["hits"]:
        matches = hit["explain"]
        assert matches and matches == sorted(matches, key=lambda m: -m["score"])
        for m in matches:
            start, end = m["document_span"]
            assert 0 <= start < end <= len(hit["text"])
            if m["query_span"] is not None:
                assert "volcanoes and magma"[m["query_span"][0]:m["query_span"][1]] == m["query_token"]
    # The matches are the MaxSim itself: every query token's best stored token, summed, is the
    # score, up to the search kernels' reduced-precision arithmetic (seen within 2%).
    hit = engine.search(["volcanoes and magma"], k=1, mode="semantic")[0][0]
    q = engine.encode_queries(["volcanoes and magma"])[0]
    (stored,) = engine.index.vectors([hit.id])
    assert abs((q @ stored.T).max(axis=1).sum() - hit.score) < 0.05 * max(1.0, abs(hit.score))
    assert "explain" not in client.post("/search", json={"query": "sea"}).json()["results"][0]["hits"][0]


def test_health_answers_while_searches_fill_the_thread_pool(engine):
    """45 slow searches once held every worker thread and /health waited for minutes behind them;
    /health runs on the event loop, off the pool that searches use."""
    import threading
    import time

    gate = threading.Event()
    real = engine.answer

    def held(*args, **kwargs):
        gate.wait(60)
        return real(*args, **kwargs)

    engine.answer = held
    try:
        with TestClient(create_app(engine, ApiSettings(api_key=None))) as c:
            searches = [
                threading.Thread(target=c.post, args=("/search",), kwargs={"json": {"query": "sea", "mode": "lexical"}})
                for _ in range(45)
            ]
            for t in searches:
                t.start()
            time.sleep(1.0)
            started = time.monotonic()
            health = c.get("/health")
            took = time.monotonic() - started
            gate.set()
            for t in searches:
                t.join(60)
    finally:
        gate.set()
        del engine.answer
    assert health.status_code == 200 and took < 3, took


def test_filters_are_bounded_in_size_and_depth(client):
    """80k $or clauses held a worker for 19 s; 900 levels of $or were called 'not valid UTF-8 JSON'."""
    from lfm2_retrieval.index.filters import MAX_FILTER_CLAUSES, MAX_FILTER_DEPTH

    wide = {"$or": [{"lang": f"x{i}"} for i in range(80_000)]}
    started = time.perf_counter()
    r = client.post("/search", json={"query": "sea", "filter": wide})
    assert r.status_code == 400 and r.json()["error"] == "invalid_filter"
    assert f"at most {MAX_FILTER_CLAUSES} conditions" in r.json()["message"] and "$in" in r.json()["message"]
    assert time.perf_counter() - started < 5
    fine = {"$or": [{"lang": f"x{i}"} for i in range(MAX_FILTER_CLAUSES - 1)] + [{"lang": "en"}]}
    assert client.post("/search", json={"query": "sea", "filter": fine}).status_code == 200

    def nested(levels):
        f = {"lang": "en"}
        for _ in range(levels):
            f = {"$or": [f]}
        return f
    assert client.post("/search", json={"query": "sea", "filter": nested(MAX_FILTER_DEPTH - 1)}).status_code == 200
    r = client.post("/search", json={"query": "sea", "filter": nested(MAX_FILTER_DEPTH + 1)})
    assert r.status_code == 400 and "nest $or and $and at most" in r.json()["message"]
    body = '{"query": "sea", "filter": ' + '{"$or": [' * 900 + '{"lang": "en"}' + ']}' * 900 + '}'
    r = client.post("/search", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 400 and "nested too deeply" in r.json()["message"], r.text


def test_the_key_guards_index_data_not_the_page_or_the_api_description(engine):
    """With a key set, every endpoint that reads or changes the index needs it; /health, the
    search page and the OpenAPI description hold no index data and answer without it (as the
    docs say)."""
    with TestClient(create_app(engine, ApiSettings(api_key="k"))) as c:
        for method, url in [("POST", "/search"), ("GET", "/facets"), ("POST", "/documents"),
                            ("DELETE", "/documents/x"), ("DELETE", "/chunks/x")]:
            assert c.request(method, url, json={"query": "x"}).status_code == 401, url
        for url in ["/health", "/", "/openapi.json", "/docs", "/redoc"]:
            assert c.get(url).status_code == 200, url


def test_every_answer_has_a_request_id_a_log_line_and_metrics(engine, caplog):
    import logging

    with TestClient(create_app(engine, ApiSettings(api_key="k"))) as c:
        key = {"authorization": "Bearer k"}
        with caplog.at_level(logging.INFO, logger="lfm2_search.access"):
            mine = c.post("/search", json={"query": "sea", "mode": "lexical"},
                          headers={**key, "x-request-id": "job-42"})
            fresh = c.post("/search", json={"query": "sea", "k": 0}, headers=key)  # a refusal is logged too
            hostile = c.get("/health", headers={"x-request-id": "bad id\nwith a newline"})
        assert mine.headers["x-request-id"] == "job-42" and len(fresh.headers["x-request-id"]) == 32
        assert hostile.headers["x-request-id"] != "bad id\nwith a newline"
        lines = [r.getMessage() for r in caplog.records if r.name == "lfm2_search.access"]
        assert any(line.startswith("POST /search 200 ") and line.endswith("id=job-42") for line in lines)
        assert any(line.startswith("POST /search 422 ") for line in lines)
        assert c.get("/metrics").status_code == 401  # behind the key, as the rest
        text = c.get("/metrics", headers=key).text
    assert 'lfm2_search_requests_total{method="POST",route="/search",status="200"} 1.0' in text
    assert 'lfm2_search_searches_total{mode="lexical"} 1.0' in text
    assert f"lfm2_search_index_chunks {float(engine.counts.chunks)}" in text
    assert 'lfm2_search_request_seconds_bucket{le="0.001",route="/search"}' in text


def test_a_read_only_key_searches_but_cannot_write_and_cors_is_opt_in(engine):
    settings = ApiSettings(api_key="rw", read_key="ro", cors_origins=["https://app.example.com"])
    doc = {"documents": [{"id": "scoped", "text": "a note on scoped keys"}]}
    with TestClient(create_app(engine, settings)) as c:
        read, write = {"authorization": "Bearer ro"}, {"authorization": "Bearer rw"}
        assert c.post("/search", json={"query": "sea", "mode": "lexical"}, headers=read).status_code == 200
        assert c.get("/metrics", headers=read).status_code == 200
        refused = c.post("/documents", json=doc, headers=read)
        assert refused.status_code == 403 and refused.json()["error"] == "forbidden"
        assert c.delete("/documents/scoped", headers=read).status_code == 403
        assert c.post("/documents", json=doc, headers={"authorization": "Bearer nope"}).status_code == 401
        assert c.post("/documents", json=doc, headers=write).status_code == 200
        assert c.delete("/documents/scoped", headers=write).status_code == 200
        preflight = {"origin": "https://app.example.com", "access-control-request-method": "POST",
                     "access-control-request-headers": "authorization,content-type"}
        allowed = c.options("/search", headers=preflight)
        assert allowed.headers["access-control-allow-origin"] == "https://app.example.com"
        other = c.options("/search", headers={**preflight, "origin": "https://evil.example"})
        assert "access-control-allow-origin" not in other.headers
    with TestClient(create_app(engine, ApiSettings(api_key=None))) as c:  # no origins set: no CORS headers
        plain = c.post("/search", json={"query": "sea", "mode": "lexical"}, headers={"origin": "https://x.example"})
        assert "access-control-allow-origin" not in plain.headers


def test_a_caller_over_the_rate_limit_is_told_when_to_come_back(engine):
    with TestClient(create_app(engine, ApiSettings(api_key="rw", rate_limit=1.0))) as c:
        key, other = {"authorization": "Bearer rw"}, {"authorization": "Bearer wrong"}
        answers = [c.post("/search", json={"query": "sea", "mode": "lexical"}, headers=key) for _ in range(4)]
        assert [a.status_code for a in answers[:2]] == [200, 200]  # a burst of twice the rate
        limited = answers[-1]
        assert limited.status_code == 429 and limited.json()["error"] == "rate_limited"
        assert int(limited.headers["retry-after"]) >= 1
        assert c.post("/search", json={"query": "sea"}, headers=other).status_code == 401  # keys before rates
        assert c.get("/health").status_code == 200  # never limited


def test_file_paths_relative_to_the_servers_root(tmp_path, pylate_tiny_dir):
    """Indexed files appear relative to the folder the server serves from (not as host paths),
    and deletes and source filters take them so; --absolute-paths (root None) shows them as held."""
    from lfm2_retrieval.client import LocalClient
    from lfm2_retrieval.ingest import IngestOptions, Ingestor

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "ops.md").write_text("# Ops\n\nRotate the keys every month.")
    (docs / "faq.md").write_text("# FAQ\n\nReset the router when the keys are rotated.")
    engine = SearchEngine.open(tmp_path / "idx", model=str(pylate_tiny_dir), create=True)
    Ingestor(engine, IngestOptions()).run([docs])
    with TestClient(create_app(engine, ApiSettings(api_key=None, root=str(tmp_path)))) as c:
        hits = c.post("/search", json={"query": "keys", "filter": {"source": "docs/ops.md"}}).json()
        hits = hits["results"][0]["hits"]
        assert [(h["id"], h["metadata"]["source"], h["metadata"]["doc_id"]) for h in hits] == [
            ("docs/ops.md#0", "docs/ops.md", "docs/ops.md")]
        prefix = c.post("/search", json={"query": "keys", "filter": {"source": {"$prefix": "docs/"}}}).json()
        assert {h["metadata"]["source"] for h in prefix["results"][0]["hits"]} == {"docs/ops.md", "docs/faq.md"}
        assert c.delete("/documents/docs/faq.md").json()["deleted_chunks"] == 1
        assert c.delete("/documents/docs/faq.md").status_code == 404
    with TestClient(create_app(engine, ApiSettings(api_key=None, root=None))) as c:
        hits = c.post("/search", json={"query": "keys"}).json()["results"][0]["hits"]
        assert [h["metadata"]["source"] for h in hits] == [(docs / "ops.md").as_posix()]
    local = LocalClient(engine, root=docs)  # the Python client shows and takes them the same way
    assert [h.id for h in local.search("keys")] == ["ops.md#0"]
    assert local.delete("ops.md").deleted_chunks == 1


def test_opentelemetry_traces_requests_and_search_stages(engine):
    """serve --otel: a span per request and, inside POST /search, per stage; /health untraced."""
    pytest.importorskip("opentelemetry.instrumentation.fastapi", reason="the otel extra is not installed")
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from lfm2_retrieval.api.tracing import enable

    spans = InMemorySpanExporter()
    app = create_app(engine, ApiSettings(api_key=None))
    enable(app, spans, batch=False)
    with TestClient(app) as c:
        assert c.post("/search", json={"query": "keys", "k": 3}).status_code == 200
        assert c.get("/health").status_code == 200
    finished = spans.get_finished_spans()
    names = [s.name for s in finished]
    assert "encode queries" in names and "search index" in names
    server = next(s for s in finished if s.kind.name == "SERVER")
    assert server.name == "POST /search" and server.attributes["http.status_code"] == 200
    stages = [s for s in finished if s.name in ("encode queries", "search index")]
    assert all(s.parent is not None and s.context.trace_id == server.context.trace_id for s in stages)
    assert not any("/health" in s.name for s in finished)
    assert next(s for s in stages if s.name == "search index").attributes["mode"] == "hybrid"


def test_delete_where_removes_what_a_filter_matches(tmp_path, pylate_tiny_dir):
    """POST /documents/delete: every chunk a filter matches, in one commit; none matched is 0
    and no commit; a malformed filter is a 400 that deletes nothing. The clients alike."""
    from lfm2_retrieval.client import InvalidRequest, LocalClient

    engine = SearchEngine.open(tmp_path / "idx", model=str(pylate_tiny_dir), create=True)
    engine.upsert([TextDocument(f"n{i}", f"Part {i} of the manual.", {"ref_doc_id": f"m{i % 2}"}) for i in range(6)])
    with TestClient(create_app(engine, ApiSettings(api_key=None))) as c:
        commit = c.get("/health").json()["index"]["commit"]
        done = c.post("/documents/delete", json={"filter": {"ref_doc_id": "m0"}}).json()
        assert done["deleted_chunks"] == 3 and done["commit"] == commit + 1
        assert c.post("/documents/delete", json={"filter": {"ref_doc_id": "m0"}}).json()["deleted_chunks"] == 0
        bad = c.post("/documents/delete", json={"filter": {"ref_doc_id": {"$regex": "m"}}})
        assert bad.status_code == 400 and len(engine) == 3
    local = LocalClient(engine)
    with pytest.raises(InvalidRequest):
        local.delete_where({"$or": "m1"})
    assert local.delete_where({"ref_doc_id": {"$in": ["m1"]}}).deleted_chunks == 3 and len(engine) == 0
