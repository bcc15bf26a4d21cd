"""The HTTP API through injected EMFILE, ENOSPC and EIO (tests/faults.py): a resource or device
error is never a 500, a write is answered 2xx exactly when it was committed (so a client that
retries on 503 neither loses nor duplicates it), and the server goes on once the fault is gone.

Each case serves a copy of one small index, fails the N-th file operation under it (and every
later one) during one request, for every distinct N of that request, the errors in rotation.
"""

from __future__ import annotations

import errno
import shutil

import pytest
from fastapi.testclient import TestClient

from faults import FailingFiles, failure_points, leftovers
from lfm2_retrieval.api import ApiSettings, create_app
from lfm2_retrieval.engine import SearchEngine, TextDocument
from lfm2_retrieval.index import MultiVectorIndex

ERRORS = [errno.EMFILE, errno.ENOSPC, errno.EIO]
ANSWERS = {errno.EMFILE: (503, "resources_exhausted"), errno.ENOSPC: (507, "disk_full"),
           errno.EIO: (503, "io_error")}

REQUESTS = {
    # name: (method, url, body, what a committed request leaves: the set of document ids)
    "add": ("POST", "/documents", {"documents": [{"id": "new", "text": "A new note on harbour cranes."}]},
            lambda ids: ids | {"new"}),
    "replace": ("POST", "/documents", {"documents": [{"id": "tide", "text": "Tides, rewritten."}]},
                lambda ids: ids),
    "delete a document": ("DELETE", "/documents/tide", None, lambda ids: ids - {"tide"}),
    "delete a chunk": ("DELETE", "/chunks/volcano%230", None, lambda ids: ids - {"volcano"}),
    "search": ("POST", "/search", {"query": "moon and tides", "k": 2}, lambda ids: ids),
}


@pytest.fixture(scope="module")
def served(tmp_path_factory, pylate_tiny_dir):
    """A template index with three documents, and the encoder every case shares."""
    path = tmp_path_factory.mktemp("api-faults") / "template"
    engine = SearchEngine.open(path, model=str(pylate_tiny_dir), create=True)
    engine.upsert([TextDocument("volcano", "Volcanoes erupt when magma rises.", {"lang": "en"}),
                   TextDocument("tide", "Tides follow the moon.", {"lang": "en"})])
    engine.upsert([TextDocument("river", "Rivers run to the sea.", {"lang": "en"})])
    return path, engine.encoder


def documents(path) -> set[str]:
    with MultiVectorIndex(path) as index:
        return {c["metadata"]["doc_id"] for c in index.iter_chunks()}


def serve_case(template, path, encoder, fail_at: int | None, error: int, request):
    """Copy the template, serve it, send `request` failing the fail_at-th file operation."""
    shutil.copytree(template, path)
    engine = SearchEngine(MultiVectorIndex(path), encoder)
    engine.auto_merge = False  # no background thread touching files while faults are injected
    method, url, body, _ = request
    with TestClient(create_app(engine, ApiSettings(api_key=None)), raise_server_exceptions=False) as client:
        with FailingFiles(path, fail_at=fail_at or 10**9, error=error) as faults:
            answer = client.request(method, url, json=body)
        answer.stored = documents(path)  # what the disk holds once the answer is given
        after = client.post("/search", json={"query": "sea", "k": 1})  # the server goes on
        again = client.request(method, url, json=body)  # a client's retry
    engine.close()  # FastAPI's caches keep recent apps' endpoints, and through them this engine
    return answer, after, again, faults


@pytest.mark.slow
@pytest.mark.parametrize("name", list(REQUESTS))
def test_no_resource_error_is_a_500_and_no_acknowledged_write_is_lost(served, fast_tmp, name):
    tmp_path = fast_tmp
    template, encoder = served
    request = REQUESTS[name]
    before = documents(template)
    clean, _, _, clean_faults = serve_case(template, tmp_path / "clean", encoder, None, errno.EIO, request)
    assert clean.status_code == 200, clean.text
    committed = request[3](before)
    points = failure_points(clean_faults.log)
    assert points, f"{name} made no file operation under the index"
    print(f"\n{name}: {len(points)} failures injected ({len(clean_faults.log)} file operations)")
    for i, n in enumerate(points):
        error = ERRORS[i % len(ERRORS)]
        path = tmp_path / f"case-{n}"
        answer, after, again, faults = serve_case(template, path, encoder, n, error, request)
        where = f"{name}, {errno.errorcode[error]} at file operation {n} ({faults.log[n - 1]})"
        assert faults.failed, where
        assert answer.status_code != 500, f"{where}: {answer.text}"
        if answer.status_code == 200:
            assert answer.stored == committed, f"{where}: answered 200, but the write is not there"
        else:
            assert answer.stored == before, f"{where}: answered {answer.status_code}, but the write was committed"
            assert (answer.status_code, answer.json()["error"]) == ANSWERS[error], f"{where}: {answer.text}"
            assert "Retry-After" in answer.headers, where
        assert after.status_code == 200, f"{where}: the server did not go on: {after.text}"
        # A retry after a refusal does what the first request would have; after an acceptance
        # a retried delete is a 404 and a retried add replaces the same document.
        if request[0] == "DELETE":
            assert again.status_code == (404 if answer.status_code == 200 else 200), f"{where}: {again.text}"
        else:
            assert again.status_code == 200, f"{where}: {again.text}"
        assert documents(path) == committed, where
        assert leftovers(path) == [], f"{where}: {leftovers(path)}"
        shutil.rmtree(path)
