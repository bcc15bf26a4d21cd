"""A soak run of `lfm2-search serve`: 16 searchers, a writer and a stream of hostile requests for
N minutes against one server process, then the bill: errors, latency percentiles, peak memory,
open files, documents lost, and how long SIGTERM takes.

    .venv/bin/python eval/soak.py                      # 10 minutes, the embedded model
    .venv/bin/python eval/soak.py --minutes 1 --model path/to/pylate-model

Every acknowledged write must be found afterwards (and every acknowledged delete gone); a
hostile request must get a 4xx, never a 5xx or a dropped connection; the server's memory and
open files must level off. Medians and percentiles are over all searches of the run.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

WORDS = ("river lake tide moon volcano magma crust glacier harbour lighthouse keeper storm wind rain snow "
         "forest desert mountain valley bridge tunnel road rail engine pump valve sensor fault error code").split()


def sentence(rng: random.Random, n: int = 40) -> str:
    return " ".join(rng.choice(WORDS) + (str(rng.randrange(100)) if rng.random() < 0.2 else "") for _ in range(n))


def hostile_requests() -> list[tuple[str, str, dict]]:
    """(method, path, httpx keyword arguments) that a careless or hostile client sends."""
    big = "x" * 5000
    deep = b'{"query": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    huge_int = b'{"query": "a", "filter": {"year": {"$gte": ' + b"9" * 5000 + b"}}}"
    return [
        ("POST", "/search", {"content": b"{not json"}),
        ("POST", "/search", {"content": b'{"query": "\xff\xfe broken utf-8"}'}),
        ("POST", "/search", {"json": {"query": ""}}),
        ("POST", "/search", {"json": {"query": big}}),
        ("POST", "/search", {"json": {"query": "a", "k": "10"}}),
        ("POST", "/search", {"json": {"query": "a", "k": 10**9}}),
        ("POST", "/search", {"content": huge_int}),
        ("POST", "/search", {"json": {"query": "a", "filter": {"year": {"$regex": ".*"}}}}),
        ("POST", "/search", {"json": {"query": "a", "filter": {"n": 2**70}}}),
        ("POST", "/search", {"json": {"query": "a", "mode": "semantic", "alpha": 0.5}}),
        ("POST", "/search", {"json": {"queries": ["a"] * 1000}}),
        ("POST", "/search", {"content": deep}),
        ("POST", "/documents", {"json": {"documents": [{"id": "", "text": "empty id"}]}}),
        ("POST", "/documents", {"json": {"documents": [{"id": "a", "text": "   "}]}}),
        ("POST", "/documents", {"json": {"documents": [{"id": "a", "text": "x", "metadata": {"doc_id": "y"}}]}}),
        ("POST", "/documents", {"json": {"documents": [{"id": "a", "text": "x", "metadata": {"m": {"nested": 1}}}]}}),
        ("POST", "/documents", {"json": {"documents": [{"id": f"d{i}", "text": "x"} for i in range(300)]}}),
        ("POST", "/documents", {"json": {"documents": [{"id": "big", "text": "word " * 60_000}]}}),
        ("POST", "/documents", {"content": b"\x00" * (17 << 20)}),
        ("DELETE", "/documents/no-such-document-" + "z" * 300, {}),
        ("GET", "/no-such-endpoint", {}),
    ]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def process_stats(pid: int) -> tuple[float, int]:
    """(resident memory in MB, open file descriptors) of a process."""
    rss = 0.0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1]) / 1024
    return rss, len(os.listdir(f"/proc/{pid}/fd"))


def tenths(samples: list) -> list:
    """The samples at 10%, 20%, ... 100% of the run: does memory level off?"""
    return [samples[min(len(samples) - 1, int(len(samples) * k / 10))] for k in range(1, 11)]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--searchers", type=int, default=16)
    parser.add_argument("--model", default=None, help="default: the embedded model")
    parser.add_argument("--seed-documents", type=int, default=300)
    args = parser.parse_args()

    from lfm2_retrieval.engine import SearchEngine, TextDocument

    rng = random.Random(0)
    work = Path(tempfile.mkdtemp(prefix="lfm2-soak-"))
    index = work / "idx"
    engine = SearchEngine.open(index, model=args.model, create=True)
    engine.upsert([TextDocument(f"seed-{i}", sentence(rng, 120), {"kind": "seed", "n": i})
                   for i in range(args.seed_documents)])
    del engine
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "lfm2_retrieval.cli", "serve", "--index", str(index),
                               "--port", str(port)], cwd=ROOT, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.2)
    else:
        sys.exit(f"the server did not start: {server.stderr.read() if server.poll() is not None else ''}")

    stop = threading.Event()
    lock = threading.Lock()
    latencies: list[float] = []
    statuses: Counter = Counter()
    errors: list[str] = []
    written: dict[str, bool] = {}  # id -> still expected (False once deleted)
    writes = [0]
    hostile_answers: Counter = Counter()
    samples: list[tuple[float, int]] = []

    def searcher(i: int) -> None:
        local = random.Random(i)
        with httpx.Client(base_url=base, timeout=120) as client:
            while not stop.is_set():
                body = {"query": sentence(local, local.randint(2, 12)), "k": local.choice([5, 10, 50]),
                        "mode": local.choice(["hybrid", "hybrid", "semantic", "lexical"])}
                if local.random() < 0.2:
                    body["filter"] = {"kind": "seed"} if local.random() < 0.5 else {"n": {"$gte": local.randrange(300)}}
                started = time.perf_counter()
                try:
                    r = client.post("/search", json=body)
                except httpx.HTTPError as exc:
                    with lock:
                        errors.append(f"search: {type(exc).__name__}: {exc}")
                    continue
                with lock:
                    latencies.append(time.perf_counter() - started)
                    statuses[f"search {r.status_code}"] += 1
                    if r.status_code != 200:
                        errors.append(f"search {r.status_code}: {r.text[:200]}")

    def writer() -> None:
        local = random.Random(99)
        with httpx.Client(base_url=base, timeout=300) as client:
            batch = 0
            while not stop.is_set():
                ids = [f"w{batch}-{j}" for j in range(local.randint(1, 8))]
                docs = [{"id": i, "text": sentence(local, local.randint(20, 400)), "metadata": {"kind": "written"}}
                        for i in ids]
                try:
                    r = client.post("/documents", json={"documents": docs})
                    ok = r.status_code == 200
                    with lock:
                        statuses[f"write {r.status_code}"] += 1
                        if ok:
                            written.update(dict.fromkeys(ids, True))
                            writes[0] += 1
                        else:
                            errors.append(f"write {r.status_code}: {r.text[:200]}")
                    if ok and batch % 5 == 4:  # now and then, delete a document written before
                        victim = local.choice(sorted(k for k, v in written.items() if v))
                        d = client.delete(f"/documents/{victim}")
                        with lock:
                            statuses[f"delete {d.status_code}"] += 1
                            if d.status_code == 200:
                                written[victim] = False
                            else:
                                errors.append(f"delete {d.status_code}: {d.text[:200]}")
                except httpx.HTTPError as exc:
                    with lock:
                        errors.append(f"write: {type(exc).__name__}: {exc}")
                batch += 1

    def hostile() -> None:
        requests = hostile_requests()
        with httpx.Client(base_url=base, timeout=120) as client:
            while not stop.is_set():
                for method, path, kwargs in requests:
                    try:
                        headers = {"content-type": "application/json"} if "content" in kwargs else None
                        r = client.request(method, path, headers=headers, **kwargs)
                        code = r.status_code
                    except httpx.HTTPError as exc:
                        code = type(exc).__name__
                    with lock:
                        hostile_answers[code] += 1
                        if not (isinstance(code, int) and 400 <= code < 500):
                            errors.append(f"hostile {method} {path}: {code}")
                stop.wait(2.0)

    def sampler() -> None:
        while not stop.is_set():
            samples.append(process_stats(server.pid))
            stop.wait(5.0)

    threads = [threading.Thread(target=searcher, args=(i,)) for i in range(args.searchers)]
    threads += [threading.Thread(target=writer), threading.Thread(target=hostile), threading.Thread(target=sampler)]
    started = time.monotonic()
    for t in threads:
        t.start()
    time.sleep(args.minutes * 60)
    stop.set()
    for t in threads:
        t.join(timeout=300)
    seconds = time.monotonic() - started

    # Lost documents: every acknowledged write must be found, every acknowledged delete gone.
    expected = {k for k, v in written.items() if v}
    deleted = {k for k, v in written.items() if not v}
    found: set[str] = set()
    with httpx.Client(base_url=base, timeout=300) as client:
        ids = sorted(written)
        for start in range(0, len(ids), 200):
            part = ids[start:start + 200]
            r = client.post("/search", json={"query": "river", "mode": "semantic", "k": 1000, "per_document": True,
                                             "filter": {"doc_id": {"$in": part}}})
            found.update(h["metadata"]["doc_id"] for h in r.json()["results"][0]["hits"])
        health = client.get("/health").json()
    lost, resurrected = expected - found, deleted & found
    rss_end, files_end = process_stats(server.pid)
    sigterm_at = time.monotonic()
    server.send_signal(signal.SIGTERM)
    try:
        server.wait(timeout=120)
        stop_s = f"{time.monotonic() - sigterm_at:.1f}"
    except subprocess.TimeoutExpired:
        server.kill()
        stop_s = "> 120 (killed)"

    rows = [
        ("duration", f"{seconds / 60:.1f} min, {args.searchers} searchers, 1 writer, 1 hostile client"),
        ("searches", f"{len(latencies)} ({len(latencies) / seconds:.1f}/s)"),
        ("search latency p50 / p95 / p99", f"{1000 * statistics.median(latencies):.0f} / "
                                           f"{1000 * percentile(latencies, 0.95):.0f} / {1000 * percentile(latencies, 0.99):.0f} ms"),
        ("writes (commits)", f"{writes[0]}, {len(written)} documents written, {len(deleted)} deleted"),
        ("answers", ", ".join(f"{k}: {v}" for k, v in sorted(statuses.items()))),
        ("hostile requests", ", ".join(f"{k}: {v}" for k, v in sorted(hostile_answers.items(), key=str))),
        ("errors (5xx, dropped, unexpected)", str(len(errors))),
        ("documents lost / deleted but found", f"{len(lost)} / {len(resurrected)}"),
        ("index at the end", f"{health['index']['chunks']} chunks, commit {health['index']['commit']}"),
        ("server RSS: first, peak, last", f"{samples[0][0]:.0f}, {max(s[0] for s in samples):.0f}, {rss_end:.0f} MB"),
        ("server RSS at each tenth of the run", ", ".join(f"{s[0]:.0f}" for s in tenths(samples)) + " MB"),
        ("server open files: first, peak, last", f"{samples[0][1]}, {max(s[1] for s in samples)}, {files_end}"),
        ("SIGTERM to exit", f"{stop_s} s"),
    ]
    width = max(len(k) for k, _ in rows)
    print(f"\n{'measure':<{width}} | value\n{'-' * width}-|------")
    for key, value in rows:
        print(f"{key:<{width}} | {value}")
    for e in errors[:10]:
        print("error:", e)
    print(f"(index kept in {work})")


if __name__ == "__main__":
    main()
