"""The product under load: indexing a folder, then `/search` over HTTP at concurrency 1 and 8.

    python -m eval.bench_api                      # SciFact documents as files, a tiny random model
    python -m eval.bench_api --model path/to/pylate-model --docs 2000 --seconds 30
    python -m eval.bench_api --index eval/out/real-collection/index   # built by eval.collections.real_collection

1. Writes `--docs` SciFact abstracts as .txt files into a temporary folder and times
   `lfm2-search index` on it in-process (files/s, chunks/s, tokens/s).
2. Starts the real server (`lfm2-search serve`, uvicorn, 127.0.0.1) in another process and
   drives `POST /search` with SciFact queries from 1 client in each mode (semantic, lexical,
   hybrid) and from 8 client threads, for `--seconds` each, then at 8 clients again while a
   writer posts documents. Latency includes HTTP, JSON, query
   encoding and search; the load generator shares the 2 cores with the server, as a colocated
   RAG backend would.

With --index, step 1 is skipped and the index given is served as it is (its own model); the
writer row is left out, so the index is not changed, and hybrid gets an 8-client row as well.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
SCIFACT = ROOT.parent / "shared" / "data" / "beir" / "scifact"


def load_scifact(n_docs: int) -> tuple[list[dict], list[str]]:
    if not SCIFACT.is_dir():
        sys.exit(f"SciFact not found at {SCIFACT} (it lives in ../shared/data)")
    docs = []
    with open(SCIFACT / "corpus.jsonl", encoding="utf-8") as f:
        for line in f:
            docs.append(json.loads(line))
            if len(docs) >= n_docs:
                break
    with open(SCIFACT / "queries.jsonl", encoding="utf-8") as f:
        queries = [json.loads(line)["text"] for line in f]
    return docs, queries


def bench_indexing(model: str, docs: list[dict], workdir: Path, dense: str | None = None) -> dict:
    from lfm2_retrieval.engine import SearchEngine
    from lfm2_retrieval.ingest import Ingestor

    folder = workdir / "docs"
    folder.mkdir()
    for d in docs:
        (folder / f"{d['_id']}.txt").write_text(f"{d.get('title', '')}\n\n{d['text']}", encoding="utf-8")
    engine = SearchEngine.open(workdir / "index", model=model, create=True, dense=dense)
    report = Ingestor(engine).run([folder])
    return {"files": report.files_indexed, "chunks": report.chunks_added, "tokens": report.tokens,
            "seconds": report.seconds, "index": workdir / "index"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(index: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "lfm2_retrieval.cli", "serve", "--index", str(index),
                             "--port", str(port)], cwd=ROOT, stderr=subprocess.DEVNULL,
                            env={**os.environ, "LFM2_SEARCH_API_KEY": ""})
    base = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                return proc, base
        except httpx.TransportError:
            time.sleep(0.2)
    proc.kill()
    sys.exit("the server did not start")


def load(base: str, queries: list[str], clients: int, seconds: float, k: int, with_writer: bool = False,
         mode: str = "semantic") -> dict:
    latencies: list[float] = []
    errors = [0]
    stop = threading.Event()
    lock = threading.Lock()
    writes = [0]

    def client(i: int) -> None:
        n = i
        with httpx.Client(base_url=base, timeout=60) as c:
            while not stop.is_set():
                q = queries[n % len(queries)]
                n += clients
                t0 = time.perf_counter()
                r = c.post("/search", json={"query": q, "k": k, "mode": mode})
                dt = time.perf_counter() - t0
                with lock:
                    if r.status_code == 200:
                        latencies.append(dt)
                    else:
                        errors[0] += 1

    def writer() -> None:
        with httpx.Client(base_url=base, timeout=120) as c:
            while not stop.is_set():
                docs = [{"id": f"bench-{writes[0]}-{j}", "text": queries[(writes[0] * 4 + j) % len(queries)]}
                        for j in range(4)]
                if c.post("/documents", json={"documents": docs}).status_code == 200:
                    writes[0] += 1
                else:
                    errors[0] += 1

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    if with_writer:
        threads.append(threading.Thread(target=writer))
    started = time.perf_counter()
    for t in threads:
        t.start()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    lat = sorted(latencies)
    return {"requests": len(lat), "errors": errors[0], "qps": len(lat) / elapsed,
            "p50_ms": 1000 * statistics.median(lat) if lat else float("nan"),
            "p95_ms": 1000 * lat[int(0.95 * (len(lat) - 1))] if lat else float("nan"), "commits": writes[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="PyLate ColBERT folder (default: a tiny random-weight LFM2 model)")
    parser.add_argument("--docs", type=int, default=1000, help="SciFact documents to index as files")
    parser.add_argument("--seconds", type=float, default=20.0, help="load duration per row")
    parser.add_argument("-k", type=int, default=10)
    parser.add_argument("--json", type=Path, help="also write the rows as JSON here")
    parser.add_argument("--index", type=Path, help="serve this existing index instead of building one")
    parser.add_argument("--dense", default=None, help="build the index with this dense encoder (e5, model, a "
                        "folder): hybrid is then three signals, and a dense row is added")
    args = parser.parse_args()

    docs, queries = load_scifact(args.docs)
    if args.index is not None:
        return serve_existing(args.index, queries, args)
    with tempfile.TemporaryDirectory(prefix="bench-api-") as tmp:
        workdir = Path(tmp)
        model = args.model
        if model is None:
            from eval.random_models import build_random_colbert
            model = str(build_random_colbert(workdir / "tiny-model"))
            label = "tiny random LFM2 (untrained)"
        else:
            label = model
        indexing = bench_indexing(model, docs, workdir, args.dense)
        proc, base = start_server(indexing["index"])
        try:
            httpx.post(f"{base}/search", json={"query": "warm-up"}, timeout=60)
            rows = [("1 client", load(base, queries, 1, args.seconds, args.k)),
                    ("1 client, lexical (BM25)", load(base, queries, 1, args.seconds, args.k, mode="lexical")),
                    ("1 client, hybrid (default fusion)", load(base, queries, 1, args.seconds, args.k, mode="hybrid")),
                    *([("1 client, dense", load(base, queries, 1, args.seconds, args.k, mode="dense"))]
                      if args.dense else []),
                    (f"8 clients, hybrid ({'three' if args.dense else 'two'} signals)",
                     load(base, queries, 8, args.seconds, args.k, mode="hybrid")),
                    ("8 clients", load(base, queries, 8, args.seconds, args.k)),
                    ("8 clients + writer", load(base, queries, 8, args.seconds, args.k, with_writer=True))]
        finally:
            proc.terminate()
            proc.wait()

    s = indexing["seconds"]
    print(f"\nmodel: {label}; {indexing['files']} SciFact files -> {indexing['chunks']} chunks, "
          f"{indexing['tokens']:,} tokens\n")
    print("| indexing | files/s | chunks/s | tokens/s | seconds |")
    print("|---|---:|---:|---:|---:|")
    print(f"| lfm2-search index | {indexing['files'] / s:.1f} | {indexing['chunks'] / s:.1f} | "
          f"{indexing['tokens'] / s:,.0f} | {s:.1f} |\n")
    print(f"| /search (k={args.k}) | requests | errors | QPS | p50 ms | p95 ms | writer commits |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, r in rows:
        print(f"| {name} | {r['requests']} | {r['errors']} | {r['qps']:.1f} | {r['p50_ms']:.1f} | "
              f"{r['p95_ms']:.1f} | {r['commits']} |")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps(
                {"model": label, "indexing": {k: v for k, v in indexing.items() if k != "index"}, "search": dict(rows)},
                indent=2,
                default=str,
            )
        )


def serve_existing(index: Path, queries: list[str], args) -> None:
    from lfm2_retrieval.engine import SearchEngine

    stats = SearchEngine.open(index).stats()
    proc, base = start_server(index)
    try:
        httpx.post(f"{base}/search", json={"query": "warm-up", "mode": "hybrid"}, timeout=60)
        modes = ("semantic", "lexical", "hybrid", *(["dense"] if stats.get("dense") else []))
        rows = [(f"{clients} client{'s' if clients > 1 else ''}, {mode}", load(base, queries, clients, args.seconds,
                                                                             args.k, mode=mode))
                for clients in (1, 8) for mode in modes]
    finally:
        proc.terminate()
        proc.wait()
    print(f"\n{index}: {stats['chunks']:,} chunks, {stats['tokens']:,} tokens, {stats['documents']:,} documents, "
          f"{stats['segments']} segments; SciFact queries\n")
    print(f"| /search (k={args.k}) | requests | errors | QPS | p50 ms | p95 ms |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, r in rows:
        print(f"| {name} | {r['requests']} | {r['errors']} | {r['qps']:.1f} | {r['p50_ms']:.1f} | {r['p95_ms']:.1f} |")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"index": str(index), "stats": stats, "search": dict(rows)}, indent=2,
                                        default=str))


if __name__ == "__main__":
    main()
