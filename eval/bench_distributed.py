"""Distributed indexing and sharded search, measured side by side on one machine.

    .venv/bin/python -m eval.bench_distributed                    # SciFact's first 1,000 abstracts
    .venv/bin/python -m eval.bench_distributed --docs 5183 --ray --ray-address auto   # a running cluster

Part 1, indexing: the same documents (SciFact abstracts as Markdown files, the embedded model)
indexed by `lfm2-search index` locally and with --ray at 1 and 2 encoder workers; documents/s
and tokens/s end to end (reading, chunking, encoding, commit). Every build is compared with the
local one: chunk ids and the top-10 of the queries.

Part 2, sharded search: the local build split into 2 and 4 shards (lfm2-search shard); SciFact's
queries one at a time, semantic and hybrid, in process (the shards searched in threads), then
over HTTP: `lfm2-search serve` on the unsharded index against Ray Serve on 2 shards (one
deployment per shard, an ingress). Medians and p95 of one run.

On a 2-core machine more workers cannot add cores: the numbers say what Ray costs here, and
the command runs unchanged against a real cluster (--ray ADDRESS), where each worker is a node.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from lfm2_retrieval.engine import SearchEngine
from lfm2_retrieval.ingest import Ingestor
from lfm2_retrieval.shards import split_index

SCIFACT = Path(__file__).resolve().parents[2] / "shared" / "data" / "beir" / "scifact"


def write_documents(folder: Path, n: int) -> list[str]:
    folder.mkdir(parents=True)
    rows = [json.loads(line) for line in open(SCIFACT / "corpus.jsonl", encoding="utf-8")][:n]
    for row in rows:
        (folder / f"{row['_id']}.md").write_text(f"# {row.get('title', '')}\n\n{row['text']}\n", encoding="utf-8")
    return [json.loads(line)["text"] for line in open(SCIFACT / "queries.jsonl", encoding="utf-8")]


def build(docs: Path, index: Path, ray: str | None, workers: int) -> tuple[SearchEngine, dict]:
    engine = SearchEngine.open(index, create=True)
    encoding = None
    if ray is not None:
        from lfm2_retrieval.distributed.encoding import RayEncoding

        encoding = RayEncoding(engine, address=None if ray == "local" else ray, workers=workers)
    started = time.perf_counter()
    report = Ingestor(engine, encoding=encoding).run([docs])
    seconds = time.perf_counter() - started
    return engine, {"files": report.files_indexed, "chunks": report.chunks_added, "tokens": report.tokens,
                    "seconds": seconds}


def same_as(reference: SearchEngine, other: SearchEngine, queries: list[str]) -> str:
    ids = sorted(c for c, _ in reference.chunk_metadata([])) == sorted(c for c, _ in other.chunk_metadata([]))
    a, b = reference.search(queries, k=10, mode="semantic"), other.search(queries, k=10, mode="semantic")
    top = np.mean([[h.id for h in x] == [h.id for h in y] for x, y in zip(a, b)])
    diff = max(abs(h.score - g.score) for x, y in zip(a, b) for h, g in zip(x, y))
    return f"same chunk ids: {ids}; same top-10: {top:.0%} of queries; max score difference {diff:.1e}"


def time_searches(search, queries: list[str]) -> tuple[float, float]:
    for q in queries[:3]:
        search(q)  # warm up
    latencies = []
    for q in queries:
        t = time.perf_counter()
        search(q)
        latencies.append(1000 * (time.perf_counter() - t))
    return statistics.median(latencies), float(np.percentile(latencies, 95))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(url: str, seconds: float = 120) -> None:
    import httpx

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"{url} did not come up")


def http_searches(url: str, queries: list[str], mode: str) -> tuple[float, float]:
    import httpx

    with httpx.Client(base_url=url, timeout=60) as client:
        def search(q):
            r = client.post("/search", json={"query": q, "k": 10, "mode": mode})
            r.raise_for_status()
        return time_searches(search, queries)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=1000, help="SciFact abstracts to index (at most 5,183)")
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--ray", default="local", help="local (a Ray instance started here) or a cluster address")
    parser.add_argument("--workers", default="1,2", help="encoder actors to try, comma separated")
    parser.add_argument("--no-http", action="store_true", help="skip the HTTP part (lfm2-search serve, Ray Serve)")
    args = parser.parse_args()
    if not (SCIFACT / "corpus.jsonl").exists():
        sys.exit(f"needs {SCIFACT} (../shared/data)")
    rows, searches = [], []
    with tempfile.TemporaryDirectory(prefix="lfm2-bench-distributed-") as tmp:
        root = Path(tmp)
        queries = write_documents(root / "docs", args.docs)[:args.queries]
        local, facts = build(root / "docs", root / "local", None, 0)
        rows.append(("local (no Ray), 2 torch threads", facts, "the reference"))
        print(rows[-1], file=sys.stderr)
        for workers in [int(w) for w in args.workers.split(",") if w.strip()]:
            engine, facts = build(root / "docs", root / f"ray-{workers}", args.ray, workers)
            rows.append((f"--ray, {workers} encoder worker(s) of 1 CPU", facts, same_as(local, engine, queries)))
            print(rows[-1], file=sys.stderr)
            shutil.rmtree(root / f"ray-{workers}")

        for n in (2, 4):
            split_index(local.path, root / f"shards-{n}", n)
        engines = {"one index": local, **{f"{n} shards (threads)": SearchEngine.open(root / f"shards-{n}")
                                          for n in (2, 4)}}
        for name, engine in engines.items():
            for mode in ("semantic", "hybrid"):
                p50, p95 = time_searches(lambda q: engine.search([q], k=10, mode=mode), queries)  # noqa: B023 - called within this iteration
                searches.append((name, "in process", mode, p50, p95))
                print(searches[-1], file=sys.stderr)

        if not args.no_http:
            port = free_port()
            server = subprocess.Popen([sys.executable, "-m", "lfm2_retrieval.cli", "serve", "--index",
                                       str(local.path), "--port", str(port)], stderr=subprocess.DEVNULL)
            try:
                wait_for(f"http://127.0.0.1:{port}")
                for mode in ("semantic", "hybrid"):
                    searches.append(("one index", "HTTP, lfm2-search serve", mode,
                                     *http_searches(f"http://127.0.0.1:{port}", queries, mode)))
            finally:
                server.terminate()
                server.wait(30)
            from ray import serve

            from lfm2_retrieval.distributed import serving

            port = free_port()
            serving.run(root / "shards-2", port=port, address=None if args.ray == "local" else args.ray,
                        shard_cpus=0.5, ingress_cpus=0.5)
            try:
                wait_for(f"http://127.0.0.1:{port}")
                for mode in ("semantic", "hybrid"):
                    searches.append(("2 shards", "HTTP, Ray Serve (a deployment per shard)", mode,
                                     *http_searches(f"http://127.0.0.1:{port}", queries, mode)))
            finally:
                serve.shutdown()

    print(f"\nIndexing {args.docs} SciFact abstracts (the embedded model; {os.cpu_count()} cores)\n")
    print("| build | files | chunks | tokens | seconds | documents/s | tokens/s | against the local build |")
    print("|---|---:|---:|---:|---:|---:|---:|---|")
    for name, f, note in rows:
        print(f"| {name} | {f['files']} | {f['chunks']} | {f['tokens']} | {f['seconds']:.1f} | "
              f"{f['files'] / f['seconds']:.1f} | {f['tokens'] / f['seconds']:,.0f} | {note} |")
    print(f"\nSearch, {len(queries)} SciFact queries one at a time, k=10 (milliseconds)\n")
    print("| index | how | mode | p50 | p95 |")
    print("|---|---|---|---:|---:|")
    for name, how, mode, p50, p95 in searches:
        print(f"| {name} | {how} | {mode} | {p50:.1f} | {p95:.1f} |")


if __name__ == "__main__":
    main()
