"""pylate's own indexes as peers: PLAID (use_fast=False) and Voyager (HNSW)."""

from __future__ import annotations

import time
from pathlib import Path


from eval.collections import Collection
from eval.measure import row, time_queries


def bench_pylate(col: Collection, kind: str, workdir: Path) -> dict:
    from pylate import indexes, retrieve

    docs = [d for _, chunk in col.chunks() for d in chunk]
    ids = [str(i) for i in range(len(docs))]
    t = time.perf_counter()
    if kind == "plaid":
        index = indexes.PLAID(index_folder=str(workdir), index_name="pylate-plaid", override=True,
                              use_fast=False, nbits=2, embedding_size=col.dim)
    else:
        index = indexes.Voyager(index_folder=str(workdir), index_name="pylate-voyager", override=True,
                                embedding_size=col.dim)
    index.add_documents(documents_ids=ids, documents_embeddings=docs)
    build = time.perf_counter() - t
    folder = workdir / ("pylate-plaid" if kind == "plaid" else "pylate-voyager")
    size = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
    retriever = retrieve.ColBERT(index=index)

    def search(q, k):
        return [int(r["id"]) for r in retriever.retrieve(queries_embeddings=[q], k=k)[0]]

    search(col.queries[0], 10)  # warm up: the first search compiles and loads PLAID's C++ extensions (~1 min)
    lat10, res10 = time_queries(lambda q: search(q, 10), col.queries)
    _, res100 = time_queries(lambda q: search(q, 100), col.queries)
    name = "pylate PLAID (use_fast=False, nbits=2)" if kind == "plaid" else "pylate Voyager (HNSW)"
    return row(name, build, size / col.n_tokens, lat10, res10, res100, col)


