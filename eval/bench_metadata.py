"""What storing a document's metadata once per segment (index format 3) saves, side by side
with one copy per chunk (format 2's layout, which plain dicts still get).

    .venv/bin/python -m eval.bench_metadata --documents 200 --chunks-per-document 100

Each document has `--keys` metadata values of `--value-chars` characters (the HTTP API allows
2,048 a value). Vectors are random (the metadata's cost does not depend on them). Prints bytes
on disk, the memory and time of opening a segment's metadata for filtering, and a filter's time.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

from lfm2_retrieval.index import ChunkMetadata, MultiVectorIndex


def build(path: Path, args, shared: bool) -> MultiVectorIndex:
    rng = np.random.default_rng(0)
    index = MultiVectorIndex.create(path, dim=96, num_centroids=256)  # the vectors do not matter here: a quick codec
    with index.writer() as writer:
        for d in range(args.documents):
            doc = {"doc_id": f"doc-{d}", "source": f"/docs/{d % 50}.md",
                   **{f"field{k}": f"{d}-{k}-" + "v" * args.value_chars for k in range(args.keys)}}
            ids, vectors, metadata = [], [], []
            for c in range(args.chunks_per_document):
                own = {"chunk": c, "start_char": 800 * c, "end_char": 800 * (c + 1)}
                ids.append(f"doc-{d}#{c}")
                v = rng.standard_normal((8, 96)).astype(np.float32)
                vectors.append(v / np.linalg.norm(v, axis=1, keepdims=True))
                metadata.append(ChunkMetadata(doc, own) if shared else {**doc, **own})
            writer.add(ids, vectors, ["chunk text"] * len(ids), metadata)
    return index


def measure(path: Path) -> dict[str, float]:
    segments = list((path / "segments").iterdir())
    out = {"records.bin MB": sum((s / "records.bin").stat().st_size for s in segments) / 2**20,
           "docs.parquet MB": sum((s / "docs.parquet").stat().st_size for s in segments) / 2**20}
    tracemalloc.start()
    started = time.perf_counter()
    index = MultiVectorIndex(path)
    for seg in index.snapshot.segments:
        seg.metadata_table  # noqa: B018 - the property reads the table: what is timed
    out["open metadata s"] = time.perf_counter() - started
    out["its peak MB"] = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    times = []
    for _ in range(5):
        started = time.perf_counter()
        index.ids_where({"source": {"$in": ["/docs/3.md", "/docs/7.md"]}, "chunk": {"$lt": 10}})
        times.append(time.perf_counter() - started)
    out["filter ms (median of 5)"] = 1000 * statistics.median(times)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--documents", type=int, default=200)
    parser.add_argument("--chunks-per-document", type=int, default=100)
    parser.add_argument("--keys", type=int, default=8)
    parser.add_argument("--value-chars", type=int, default=2048)
    args = parser.parse_args()
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, shared in (("a copy per chunk (format 2)", False), ("once per document (format 3)", True)):
            build(Path(tmp) / name, args, shared)
            rows[name] = measure(Path(tmp) / name)
    print(f"{args.documents} documents x {args.chunks_per_document} chunks, {args.keys} metadata values of "
          f"{args.value_chars} characters each\n")
    columns = list(next(iter(rows.values())))
    print("| layout | " + " | ".join(columns) + " |")
    print("|---|" + "---:|" * len(columns))
    for name, values in rows.items():
        print(f"| {name} | " + " | ".join(f"{v:.2f}" if v < 100 else f"{v:.0f}" for v in values.values()) + " |")


if __name__ == "__main__":
    main()
