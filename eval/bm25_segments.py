"""BM25 on an index of one segment against the same documents in ten segments of unequal sizes
(as incremental indexing leaves them): NDCG@10 of SciFact's 300 test queries, lexical search.

    .venv/bin/python -m eval.bm25_segments

Scores should not depend on how the index is split: segments' document frequencies, text counts
and text lengths are summed into the collection's statistics (index/lexical.py). Copied into an
older checkout's eval/ and run there, it shows what per-segment statistics cost: on 2026-12-01,
0.6634 for one segment and ten alike here, 0.6624 for ten at commit 4cf8429 (each segment's own
average text length; SciFact's abstracts are of similar lengths, so the loss is small there).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
from pathlib import Path

import numpy as np

from lfm2_retrieval.index import MultiVectorIndex

SCIFACT = Path(__file__).resolve().parents[2] / "shared" / "data" / "beir" / "scifact"
SPLITS = [0, 50, 150, 300, 600, 1000, 1500, 2200, 3000, 4000]  # segment starts: 50 to 1,183 documents


def ndcg_at_10(index: MultiVectorIndex, queries: dict[str, str], qrels: dict[str, dict[str, int]]) -> float:
    ids = list(qrels)
    total = 0.0
    for q, hits in zip(ids, index.search_lexical([queries[q] for q in ids], k=10)):
        dcg = sum(qrels[q].get(h.id, 0) / math.log2(i + 2) for i, h in enumerate(hits))
        total += dcg / sum(1 / math.log2(i + 2) for i in range(min(10, len(qrels[q]))))
    return total / len(ids)


def main() -> None:
    argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter).parse_args()
    if not (SCIFACT / "corpus.jsonl").exists():
        sys.exit(f"needs {SCIFACT} (../shared/data)")
    docs = [json.loads(line) for line in open(SCIFACT / "corpus.jsonl", encoding="utf-8")]
    queries = {r["_id"]: r["text"] for r in map(json.loads, open(SCIFACT / "queries.jsonl", encoding="utf-8"))}
    qrels: dict[str, dict[str, int]] = {}
    for line in (SCIFACT / "qrels" / "test.tsv").read_text().splitlines()[1:]:
        q, d, score = line.split("\t")
        qrels.setdefault(q, {})[d] = int(score)
    ids, texts = [d["_id"] for d in docs], [f"{d.get('title', '')}. {d['text']}" for d in docs]
    vectors = [np.ones((2, 16), np.float32)] * len(ids)  # lexical search only: any vectors will do
    with tempfile.TemporaryDirectory() as tmp:
        one = MultiVectorIndex.create(Path(tmp) / "one", dim=16, nbits=2)
        one.add(ids, vectors, texts)
        ten = MultiVectorIndex.create(Path(tmp) / "ten", dim=16, nbits=2)
        for a, b in zip(SPLITS, SPLITS[1:] + [len(ids)]):
            ten.add(ids[a:b], vectors[a:b], texts[a:b])
        print("| index | segments | NDCG@10 (BM25, SciFact test) |\n|---|---:|---:|")
        print(f"| one segment | 1 | {ndcg_at_10(one, queries, qrels):.4f} |")
        print(
            f"| the same documents, ten segments | {len(ten.snapshot.segments)} "
            f"| {ndcg_at_10(ten, queries, qrels):.4f} |"
        )


if __name__ == "__main__":
    main()
