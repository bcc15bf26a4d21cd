"""A real `lfm2-search serve` (uvicorn on 127.0.0.1) under concurrent searches while documents
are added: no error, no lost document, and every reader sees commits in order."""

import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from lfm2_retrieval.engine import SearchEngine, TextDocument

pytestmark = pytest.mark.slow  # runs a live server

SEARCHERS = 8
WRITES = 25
DOCS_PER_WRITE = 4


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture()
def server(tmp_path, pylate_tiny_dir):
    index = tmp_path / "idx"
    engine = SearchEngine.open(index, model=str(pylate_tiny_dir), create=True)
    engine.upsert([TextDocument(f"seed-{i}", f"seed document number {i} about rivers") for i in range(20)])
    port = free_port()
    env = {**os.environ, "LFM2_SEARCH_API_KEY": "live-key"}
    proc = subprocess.Popen([sys.executable, "-m", "lfm2_retrieval.cli", "serve", "--index", str(index),
                             "--port", str(port)], env=env, stderr=subprocess.PIPE, text=True,
                            cwd=Path(__file__).parents[1])
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.2)
        if proc.poll() is not None:
            pytest.fail(f"server exited: {proc.stderr.read()}")
    else:
        proc.kill()
        pytest.fail("server did not start within 60 s")
    yield base
    proc.terminate()
    proc.wait(timeout=10)


def test_searches_during_writes(server):
    headers = {"Authorization": "Bearer live-key"}
    errors: list[str] = []
    commits: dict[int, list[int]] = {}
    stop = threading.Event()
    searches = [0]

    def searcher(i: int) -> None:
        seen = commits.setdefault(i, [])
        with httpx.Client(base_url=server, headers=headers, timeout=30) as client:
            while not stop.is_set():
                r = client.post("/search", json={"query": f"rivers {i}", "k": 5})
                if r.status_code != 200:
                    errors.append(f"search {r.status_code}: {r.text[:200]}")
                    continue
                seen.append(r.json()["commit"])
                searches[0] += 1

    def writer() -> None:
        with httpx.Client(base_url=server, headers=headers, timeout=60) as client:
            for w in range(WRITES):
                docs = [{"id": f"new-{w}-{j}", "text": f"fresh document {w} {j} about lakes", "metadata": {"w": w}}
                        for j in range(DOCS_PER_WRITE)]
                r = client.post("/documents", json={"documents": docs})
                if r.status_code != 200:
                    errors.append(f"write {r.status_code}: {r.text[:200]}")

    threads = [threading.Thread(target=searcher, args=(i,)) for i in range(SEARCHERS)]
    for t in threads:
        t.start()
    write_thread = threading.Thread(target=writer)
    write_thread.start()
    write_thread.join(timeout=300)
    stop.set()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors[:5]
    assert searches[0] >= SEARCHERS
    for seen in commits.values():
        assert seen == sorted(seen)  # a reader never goes back to an older snapshot

    with httpx.Client(base_url=server, headers=headers, timeout=30) as client:
        health = client.get("/health").json()
        assert health["index"]["chunks"] == 20 + WRITES * DOCS_PER_WRITE
        r = client.post("/search", json={"query": "lakes", "k": 1000, "filter": {"w": {"$gte": 0}}})
        found = {h["metadata"]["doc_id"] for h in r.json()["results"][0]["hits"]}
        assert found == {f"new-{w}-{j}" for w in range(WRITES) for j in range(DOCS_PER_WRITE)}
