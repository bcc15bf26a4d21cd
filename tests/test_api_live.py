"""A real `lfm2-search serve` (uvicorn on 127.0.0.1) under concurrent searches while documents
are added: no error, no lost document, and every reader sees commits in order."""

import os
import resource
import signal
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


def start_server(index: Path, open_files: int | None = None, extra: tuple[str, ...] = ()):
    """(process, base URL) of `lfm2-search serve` on a free port, answering /health."""
    port = free_port()
    env = {**os.environ, "LFM2_SEARCH_API_KEY": "live-key"}

    def limits() -> None:
        if open_files is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (open_files, open_files))

    proc = subprocess.Popen([sys.executable, "-m", "lfm2_retrieval.cli", "serve", "--index", str(index),
                             "--port", str(port), *extra], env=env, stderr=subprocess.PIPE, text=True,
                            cwd=Path(__file__).parents[1], preexec_fn=limits)
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
    return proc, base


def seeded_index(tmp_path, model_dir) -> Path:
    index = tmp_path / "idx"
    engine = SearchEngine.open(index, model=str(model_dir), create=True)
    engine.upsert([TextDocument(f"seed-{i}", f"seed document number {i} about rivers") for i in range(20)])
    return index


@pytest.fixture()
def server(tmp_path, pylate_tiny_dir):
    proc, base = start_server(seeded_index(tmp_path, pylate_tiny_dir))
    yield base
    proc.terminate()
    proc.wait(timeout=30)


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


def test_searches_keep_their_latency_while_a_big_add_runs(server):
    """The largest request the API takes (256 documents, ~490k characters) is encoded before the
    writer lock and committed in one step; searches must keep being answered all along, not wait
    behind it. The tiny model makes encoding cheap, so the add is long only through its size."""
    headers = {"Authorization": "Bearer live-key"}
    big = [{"id": f"big-{i}", "text": " ".join(f"lake{i} shore{j} water{(i + j) % 97}" for j in range(80))}
           for i in range(256)]

    def timed_searches(client, n=None, until=None) -> list[float]:
        out = []
        while (n is not None and len(out) < n) or (until is not None and not until.is_set()):
            t = time.perf_counter()
            r = client.post("/search", json={"query": "rivers and lakes", "k": 10})
            assert r.status_code == 200, r.text
            out.append(time.perf_counter() - t)
        return out

    with httpx.Client(base_url=server, headers=headers, timeout=120) as client:
        quiet = timed_searches(client, n=30)
        done, result = threading.Event(), {}

        def add() -> None:
            with httpx.Client(base_url=server, headers=headers, timeout=300) as writer:
                started = time.perf_counter()
                result["response"] = writer.post("/documents", json={"documents": big})
                result["seconds"] = time.perf_counter() - started
            done.set()

        thread = threading.Thread(target=add)
        thread.start()
        during = timed_searches(client, until=done)
        thread.join()
    assert result["response"].status_code == 200, result["response"].text
    p95_quiet, p95_during = sorted(quiet)[int(0.95 * len(quiet))], sorted(during)[int(0.95 * len(during))]
    print(f"add {result['seconds']:.2f} s; search p95 quiet {1000 * p95_quiet:.1f} ms, during the add "
          f"{1000 * p95_during:.1f} ms over {len(during)} searches")
    # Answered throughout: many searches finished while the add ran, none waited for most of it.
    assert len(during) >= 5
    assert p95_during < max(0.5 * result["seconds"], 10 * p95_quiet)


def test_many_writes_under_a_low_open_files_limit(tmp_path, pylate_tiny_dir):
    """Once one segment per write (about 11 files each) and no merging: under `ulimit -n 1024`
    write 91 answered 500. Segments are merged in the background now, so 150 writes under a
    limit of 256 open files all succeed and the index stays searchable."""
    proc, base = start_server(seeded_index(tmp_path, pylate_tiny_dir), open_files=256)
    headers = {"Authorization": "Bearer live-key"}
    try:
        with httpx.Client(base_url=base, headers=headers, timeout=60) as client:
            for w in range(150):
                r = client.post("/documents", json={"documents": [{"id": f"w-{w}", "text": f"write {w} about lakes"}]})
                assert r.status_code == 200, (w, r.text)
            hits = client.post("/search", json={"query": "lakes", "k": 1000, "mode": "lexical"}).json()
            assert len(hits["results"][0]["hits"]) == 150
            assert client.get("/health").json()["index"]["chunks"] == 170
        open_files = len(os.listdir(f"/proc/{proc.pid}/fd"))
        assert open_files < 200, open_files
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_sigterm_stops_the_server_promptly_with_connections_open(tmp_path, pylate_tiny_dir):
    """Once SIGTERM was ignored for over 2 minutes while heavy searches filled the thread pool:
    the server now stops within its shutdown timeout, idle keep-alive connections included."""
    proc, base = start_server(seeded_index(tmp_path, pylate_tiny_dir), extra=("--shutdown-timeout", "3"))
    headers = {"Authorization": "Bearer live-key"}
    idle = httpx.Client(base_url=base, headers=headers, timeout=60)
    assert idle.get("/health").status_code == 200  # a kept-alive connection, left idle
    heavy = {"queries": [f"rivers {i} " * 200 for i in range(64)], "k": 1000, "explain": True}

    def search() -> None:
        with httpx.Client(base_url=base, headers=headers, timeout=60) as client:
            try:
                while True:
                    client.post("/search", json=heavy)
            except httpx.HTTPError:
                pass  # the server went away: expected

    threads = [threading.Thread(target=search, daemon=True) for _ in range(40)]
    for t in threads:
        t.start()
    time.sleep(1.0)
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    idle.close()
    print(f"stopped {time.monotonic() - started:.1f} s after SIGTERM")  # 5 s: 3 s of grace, 2 s more at most
    assert time.monotonic() - started < 15
