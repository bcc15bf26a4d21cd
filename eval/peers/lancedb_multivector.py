"""LanceDB's multivector column, searched by MaxSim: flat, or through its IVF_PQ index."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np

from eval.collections import Collection
from eval.measure import row, time_queries


def bench_lancedb(col: Collection, workdir: Path, indexed: bool, nprobes: int | None = None,
                  refine_factor: int | None = None) -> dict:
    """LanceDB's multivector column (a list of token vectors a row) searched by MaxSim: flat
    (every row scored) or through an IVF_PQ index of the token vectors, with its default search
    settings or with `nprobes` partitions probed and `refine_factor` times k rows re-scored on
    the stored vectors."""
    import lancedb
    import pyarrow as pa
    from lancedb.index import IvfPq

    t = time.perf_counter()
    db = lancedb.connect(str(workdir / "lancedb"))
    schema = pa.schema([("id", pa.int64()), ("vector", pa.list_(pa.list_(pa.float32(), col.dim)))])

    def batches():
        for start, docs in col.chunks():
            for s in range(0, len(docs), 2048):
                part = docs[s:s + 2048]
                flat = pa.array(np.concatenate(part).ravel(), pa.float32())
                tokens = pa.FixedSizeListArray.from_arrays(flat, col.dim)
                offsets = pa.array(np.concatenate([[0], np.cumsum([len(d) for d in part])]), pa.int32())
                yield pa.record_batch([pa.array(np.arange(start + s, start + s + len(part)), pa.int64()),
                                       pa.ListArray.from_arrays(offsets, tokens)], schema=schema)

    table = db.create_table("chunks", data=pa.RecordBatchReader.from_batches(schema, batches()), mode="overwrite")
    if indexed:
        table.create_index("vector", config=IvfPq(distance_type="cosine"))  # multivector: cosine only
    build = time.perf_counter() - t
    size = sum(f.stat().st_size for f in (workdir / "lancedb").rglob("*") if f.is_file())

    def search(q, k):
        hits = table.search(q, vector_column_name="vector").limit(k).select(["id", "_distance"])
        if nprobes:
            hits = hits.nprobes(nprobes)
        if refine_factor:
            hits = hits.refine_factor(refine_factor)
        return hits.to_arrow().column("id").to_pylist()

    search(col.queries[0], 10)  # warm up, as every system here
    lat10, res10 = time_queries(lambda q: search(q, 10), col.queries)
    _, res100 = time_queries(lambda q: search(q, 100), col.queries)
    shutil.rmtree(workdir / "lancedb", ignore_errors=True)
    settings = ", ".join(f"{k} {v}" for k, v in (("nprobes", nprobes), ("refine_factor", refine_factor)) if v)
    name = f"LanceDB {lancedb.__version__} multivector, " + (f"IVF_PQ index ({settings or 'defaults'})" if indexed
                                                              else "flat")
    return row(name, build, size / col.n_tokens, lat10, res10, res100, col, "fp32 vectors stored")


