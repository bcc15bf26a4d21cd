"""A soak run of `lfm2-search serve`: 16 searchers, a writer and a stream of hostile requests for
N minutes against one server process, then the bill: errors, latency percentiles, peak memory,
open files, documents lost, and how long SIGTERM takes.

    .venv/bin/python -m eval.soak                      # 10 minutes, the embedded model
    .venv/bin/python -m eval.soak --minutes 1 --model path/to/pylate-model
    .venv/bin/python -m eval.soak --minutes 5 --fd-edge   # descriptors kept at the edge (Linux)

Every acknowledged write must be found afterwards (and every acknowledged delete gone); a
hostile request must get a 4xx, never a 5xx or a dropped connection; the server's memory and
open files must level off. Medians and percentiles are over all searches of the run.

With --fd-edge the server's descriptor limit (soft RLIMIT_NOFILE, set from outside with
prlimit) is held a few above what it has open for one period in two, as an adversary's probe
did: then a request may be refused with 503 resources_exhausted (counted apart, not an error),
but never answered 500, and a write refused must not be found afterwards (it would have been
committed behind a failure answer). After the run the limit is lifted, and the index must open
and pass `lfm2-search check --full` in another process.
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
        ("DELETE", "/chunks/no-such-chunk%230", {}),
        ("POST", "/search", {"json": {"query": "a", "filter": {"$or": [{"n": i} for i in range(80_000)]}}}),
        ("POST", "/search", {"content": b'{"query": "a", "filter": ' + b'{"$or": [' * 900 + b'{"n": 1}'
                                        + b"]}" * 900 + b"}"}),
        ("GET", "/no-such-endpoint", {}),
    ]


def refused_for_resources(response: httpx.Response) -> bool:
    """A refusal for want of descriptors, memory or disk: allowed (it says retry), never a 500."""
    return response.status_code in (503, 507) and response.json().get("error") in (
        "resources_exhausted", "io_error", "disk_full")


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
    parser.add_argument("--fd-edge", action="store_true",
                        help="hold the server's descriptor limit a few above what it holds, one period in two")
    parser.add_argument("--edge-period", type=float, default=10.0, help="seconds of each period (--fd-edge)")
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
    # The server's log goes to a file: a pipe nobody reads fills up and blocks the server.
    server_log = open(work / "server.log", "w")
    server = subprocess.Popen([sys.executable, "-m", "lfm2_retrieval.cli", "serve", "--index", str(index),
                               "--port", str(port)], cwd=ROOT, stdout=server_log, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.2)
    else:
        sys.exit(f"the server did not start: see {work / 'server.log'}")

    stop = threading.Event()
    lock = threading.Lock()
    latencies: list[float] = []
    statuses: Counter = Counter()
    errors: list[str] = []
    written: dict[str, bool] = {}  # id -> still expected (False once deleted)
    refused: set[str] = set()  # ids of writes answered 503/507: they must not be stored
    writes = [0]
    edges = [0]  # periods the descriptor limit was held at the edge
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
                    if r.status_code != 200 and not refused_for_resources(r):
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
                        elif refused_for_resources(r):
                            refused.update(ids)
                        else:
                            errors.append(f"write {r.status_code}: {r.text[:200]}")
                    if ok and batch % 5 == 4:  # now and then, delete a document written before
                        victim = local.choice(sorted(k for k, v in written.items() if v))
                        d = client.delete(f"/documents/{victim}")
                        with lock:
                            statuses[f"delete {d.status_code}"] += 1
                            if d.status_code == 200:
                                written[victim] = False
                            elif not refused_for_resources(d):
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
                        if not (isinstance(code, int) and (400 <= code < 500 or refused_for_resources(r))):
                            errors.append(f"hostile {method} {path}: {code}")
                stop.wait(2.0)

    def sampler() -> None:
        while not stop.is_set():
            samples.append(process_stats(server.pid))
            stop.wait(5.0)

    import resource

    normal_limit = resource.prlimit(server.pid, resource.RLIMIT_NOFILE)

    def edge() -> None:
        """One period in two, the soft descriptor limit a few above what the server holds."""
        local = random.Random(7)
        while not stop.wait(args.edge_period):
            if edges[0] % 2 == 0:
                held = process_stats(server.pid)[1]
                resource.prlimit(server.pid, resource.RLIMIT_NOFILE, (held + local.randint(2, 24), normal_limit[1]))
            else:
                resource.prlimit(server.pid, resource.RLIMIT_NOFILE, normal_limit)
            edges[0] += 1
        resource.prlimit(server.pid, resource.RLIMIT_NOFILE, normal_limit)

    threads = [threading.Thread(target=searcher, args=(i,)) for i in range(args.searchers)]
    threads += [threading.Thread(target=writer), threading.Thread(target=hostile), threading.Thread(target=sampler)]
    if args.fd_edge:
        threads.append(threading.Thread(target=edge))
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
    # What the index holds, read from the index itself (in this process, a reader beside the
    # server's): a search would only find documents that match its query.
    unsearchable: list[str] = []
    try:
        from lfm2_retrieval.index import MultiVectorIndex

        reader = MultiVectorIndex(index)
        held = {meta["doc_id"] for _, meta in reader.scan_metadata(["doc_id"])}
    except Exception as exc:
        held = set()
        unsearchable.append(f"{type(exc).__name__}: {exc}"[:200])
    found, refused_found = held & set(written), held & refused
    with httpx.Client(base_url=base, timeout=300) as client:
        health = client.get("/health")
        health = health.json()["index"] if health.status_code == 200 else {"chunks": "?", "commit": "?"}
    lost, resurrected = expected - found, deleted & found
    check = subprocess.run([sys.executable, "-m", "lfm2_retrieval.cli", "check", "--full", "--index", str(index)],
                           cwd=ROOT, capture_output=True, text=True)
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
        (
            "search latency p50 / p95 / p99",
            f"{1000 * statistics.median(latencies):.0f} / "
            f"{1000 * percentile(latencies, 0.95):.0f} / {1000 * percentile(latencies, 0.99):.0f} ms",
        ),
        ("writes (commits)", f"{writes[0]}, {len(written)} documents written, {len(deleted)} deleted"),
        ("answers", ", ".join(f"{k}: {v}" for k, v in sorted(statuses.items()))),
        ("hostile requests", ", ".join(f"{k}: {v}" for k, v in sorted(hostile_answers.items(), key=str))),
        ("errors (5xx, dropped, unexpected)", str(len(errors))),
        (
            "documents lost / deleted but found",
            f"{len(lost)} / {len(resurrected)}"
            if not unsearchable
            else f"unknown: the index does not open ({unsearchable[0]})",
        ),
        ("writes refused (503/507) / of them stored", f"{len(refused)} documents / {len(refused_found)}"),
        (
            "descriptor limit at the edge",
            f"{edges[0] // 2 + edges[0] % 2} periods of {args.edge_period:.0f} s" if args.fd_edge else "no",
        ),
        (
            "check --full afterwards (another process)",
            f"exit {check.returncode}: {(check.stdout or check.stderr).strip().splitlines()[-1][:90]}",
        ),
        ("index at the end", f"{health['chunks']} chunks, commit {health['commit']}"),
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
