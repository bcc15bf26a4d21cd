"""Writes tests/data/index-0.1.0: an index in the on-disk format of release 0.1.0, with the
results it gave then, so that later releases prove they still open it, search it identically
and commit to it (tests/test_index_compatibility.py).

It was run once, at commit 656ed86 (format 2), and its output committed:
    .venv/bin/python tests/data/make_release_index.py
Run again only to record a new format, into a new folder: the old one must stay as it was.
"""

import json
import shutil
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE.parents[1])]  # tests/ helpers, and eval/
from index_helpers import clustered_corpus, queries_from  # noqa: E402 - after the path to tests/ helpers is set

from lfm2_retrieval.index import MultiVectorIndex  # noqa: E402 - after the path to tests/ helpers is set

OUT = HERE / "index-0.1.0"
WORDS = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho sigma".split()


def text_of(i: int) -> str:
    rng = np.random.default_rng(i)
    return " ".join(rng.choice(WORDS, size=12)) + f" doc{i}"


def main() -> None:
    if OUT.exists():
        shutil.rmtree(OUT)
    docs = clustered_corpus(240, dim=32, seed=3)
    index = MultiVectorIndex.create(OUT / "index", dim=32, nbits=2, model_fingerprint="test-fingerprint",
                                    model_source="tests/data/no-model")
    # Three commits, so three segments, and a deletion (tombstones) in the last one.
    for start, stop in [(0, 100), (100, 180), (180, 240)]:
        with index.writer() as w:
            ids = [f"doc-{i}#0" for i in range(start, stop)]
            meta = [{"doc_id": f"doc-{i}", "chunk": 0, "lang": ["en", "de", "ja"][i % 3], "n": i}
                    for i in range(start, stop)]
            w.add(ids, docs[start:stop], [text_of(i) for i in range(start, stop)], meta)
            if start == 180:
                w.delete([f"doc-{i}#0" for i in range(0, 240, 7)])
    queries = queries_from(docs, 12, seed=5)
    np.save(OUT / "queries.npy", np.stack(queries))
    texts = ["alpha beta", "omicron pi rho", "doc17", "sigma"]

    def listing(hits):
        return [[h.id, round(float(h.score), 6)] for h in hits]

    expected = {
        "commit": index.commit,
        "chunks": len(index),
        "semantic": [listing(h) for h in index.search(queries, k=10)],
        "semantic_de": [listing(h) for h in index.search(queries, k=5, filter={"lang": "de"})],
        "lexical_texts": texts,
        "lexical": [listing(h) for h in index.search_lexical(texts, k=10)],
        "stored": index.get(["doc-1#0", "doc-7#0"]),
    }
    (OUT / "expected.json").write_text(json.dumps(expected, indent=1, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
