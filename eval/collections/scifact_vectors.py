"""SciFact's abstracts and queries as token vectors of the default model, encoded once and cached.

The cache (eval/out/scifact-vectors.npz, not committed) names the model folder and the size and
time of its files; a different model, or the same folder retrained, encodes again.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
SCIFACT = ROOT.parent / "shared" / "data" / "beir" / "scifact"
CACHE = ROOT / "eval" / "out" / "scifact-vectors.npz"


def _model_key(model: Path) -> str:
    files = sorted(p for p in Path(model).rglob("*") if p.is_file())
    return json.dumps([str(Path(model).resolve())] + [[str(p.relative_to(model)), p.stat().st_size,
                                                       int(p.stat().st_mtime)] for p in files])


def scifact_vectors(n_queries: int, first: int = 0) -> tuple[list[np.ndarray], list[np.ndarray], Path] | None:
    """(each abstract's token vectors, token vectors of n_queries queries from number `first` of
    queries.jsonl, the model), or None when SciFact or a model is missing."""
    from lfm2_retrieval.model.locations import NoModelError, default_model

    if not (SCIFACT / "corpus.jsonl").exists():
        return None
    try:
        model = Path(default_model())
    except NoModelError:
        return None
    key = _model_key(model)
    if CACHE.exists():
        data = np.load(CACHE)
        if (
            "model_key" in data.files
            and str(data["model_key"]) == key
            and len(data["query_bounds"]) - 1 >= first + n_queries
        ):
            docs = np.split(data["docs"], data["doc_bounds"][1:-1])
            queries = np.split(data["queries"], data["query_bounds"][1:-1])
            return docs, queries[first:first + n_queries], model
    from lfm2_retrieval import ColBERTEncoder

    encoder = ColBERTEncoder.from_pretrained(model)
    rows = [json.loads(line) for line in open(SCIFACT / "corpus.jsonl", encoding="utf-8")]
    docs = [np.asarray(d, np.float32) for d in
            encoder.encode_documents([f"{d.get('title', '')}. {d['text']}" for d in rows], show_progress=True)]
    texts = [json.loads(line)["text"] for line in open(SCIFACT / "queries.jsonl", encoding="utf-8")]
    queries = [np.asarray(q, np.float32) for q in encoder.encode_queries(texts)]
    CACHE.parent.mkdir(parents=True, exist_ok=True)
    tmp = CACHE.with_suffix(".tmp.npz")
    np.savez(tmp, docs=np.concatenate(docs), doc_bounds=np.cumsum([0] + [len(d) for d in docs]),
             queries=np.concatenate(queries), query_bounds=np.cumsum([0] + [len(q) for q in queries]),
             model_key=np.array(key))
    tmp.replace(CACHE)
    return docs, queries[first:first + n_queries], model
