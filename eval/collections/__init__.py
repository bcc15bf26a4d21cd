"""The collections the index benchmarks search: token vectors with their queries and the exact
top-k of each query (exhaustive MaxSim over the raw fp32 vectors), from synthetic clusters
(synthetic_vectors.py), BEIR SciFact (scifact_vectors.py) or the real multilingual collection
(real_collection.py's records, encoded once by real_vectors.py)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np
import torch

from .scifact_vectors import SCIFACT, scifact_vectors
from .synthetic_vectors import clustered_docs, clustered_queries, topic_pool

DIM = 128
CHUNK_DOCS = 20_000


@dataclass
class Collection:
    name: str
    n_docs: int
    n_tokens: int
    queries: list[np.ndarray]
    chunks: callable  # () -> iterator of (first_doc_number, list of [n, dim] arrays)
    truth: dict[int, list[list[int]]] = field(default_factory=dict)
    dim: int = DIM
    # A real collection's chunks (PreparedChunk, in vector order) and its model: this index then
    # stores their texts and metadata too, so a kept one also serves --index and bench_api.py.
    records: list | None = None
    model_source: str | None = None
    model_fingerprint: str | None = None


def synthetic(n_docs: int, n_queries: int, dim: int = DIM, doc_tokens: tuple[int, int] = (16, 48)) -> Collection:
    topics = topic_pool(dim)
    low, high = doc_tokens

    def chunks():
        for c, start in enumerate(range(0, n_docs, CHUNK_DOCS)):
            yield start, clustered_docs(min(CHUNK_DOCS, n_docs - start), dim, seed=1000 + c, topics=topics,
                                        min_tokens=low, max_tokens=high)

    n_tokens = (sum(sum(len(d) for d in docs) for _, docs in chunks()) if n_docs <= 100_000
                else (low + high) // 2 * n_docs)
    name = f"synthetic-{short_size(n_docs)}" + ("" if doc_tokens == (16, 48) else f" ({low}-{high} tokens, {dim}-d)")
    return Collection(name, n_docs, n_tokens, clustered_queries(n_queries, dim, topics=topics), chunks, dim=dim)


def scifact(n_queries: int) -> Collection | None:
    """SciFact's 5,183 abstracts and its first queries, encoded by the default model (the
    embedded trained model unless $LFM2_SEARCH_MODEL names another), cached after the first run."""
    found = scifact_vectors(n_queries)
    if found is None:
        return None
    docs, q, model = found
    return Collection(f"SciFact ({model.name} model)", len(docs), sum(len(d) for d in docs), q,
                      lambda: iter([(0, docs)]), dim=docs[0].shape[1])


def real(n_chunks: int, per_language: int) -> Collection:
    """The first n_chunks chunks of the real multilingual collection (eval/collections/real_vectors.py: QA
    paragraphs of every language, SciFact, NTREX-128 in 128 languages, chunked as `lfm2-search
    index` chunks them), with the raw vectors of the default model, and index_queries' queries."""
    from lfm2_retrieval import ColBERTEncoder
    from lfm2_retrieval.model.locations import default_model, model_source
    from .real_vectors import build, real_chunks

    encoder = ColBERTEncoder.from_pretrained(default_model())
    vectors = build(n_chunks, encoder)
    records = real_chunks(encoder, vectors.n_chunks)
    if [c.id for c in records] != vectors.chunk_ids():
        raise SystemExit(f"{vectors.folder} was chunked differently (the chunker changed): delete it to encode anew")
    queries = [np.asarray(q, np.float32) for q in encoder.encode_queries(index_queries(per_language))]
    name = f"real-{short_size(n_chunks)} (multilingual chunks, {vectors.dim}-d, {len(queries)} queries)"
    return Collection(name, vectors.n_chunks, vectors.n_tokens, queries, vectors.pieces, dim=vectors.dim,
                      records=records, model_source=model_source(default_model()),
                      model_fingerprint=encoder.fingerprint)


def index_queries(per_language: int = 8, scifact_queries: int = 20, dev: bool = False) -> list[str]:
    """Queries for an index of the real collection (eval/collections/real_collection.py): SciFact's first
    queries and the first questions of every QA language's files, so that every script the
    collection holds is asked about. dev: the next ones instead (SciFact's queries 20-39, the
    next `per_language` questions), on which search settings are tuned, never on the reported."""
    from lfm2_retrieval.evaluation.builders import read_squad

    skip_scifact, skip_questions = (scifact_queries, per_language) if dev else (0, 0)
    texts = [json.loads(line)["text"] for line in open(SCIFACT / "queries.jsonl", encoding="utf-8")]
    texts = texts[skip_scifact:skip_scifact + scifact_queries]
    for folder in sorted((SCIFACT.parents[1] / "qa").glob("*")):
        _, questions = read_squad(sorted(folder.glob("*.json")))
        texts += [q for _, q, _ in questions[skip_questions:skip_questions + per_language]]
    return texts


def short_size(n: int) -> str:
    return f"{n // 1_000_000}m" if n >= 1_000_000 else f"{n // 1000}k"


def _token_bounded(col: Collection, max_tokens: int = 65536):
    """(first doc number, docs) pieces of at most ~max_tokens tokens (one doc at least)."""
    for chunk_start, chunk in col.chunks():
        piece, tokens, first = [], 0, chunk_start
        for i, doc in enumerate(chunk):
            if piece and tokens + len(doc) > max_tokens:
                yield first, piece
                piece, tokens, first = [], 0, chunk_start + i
            piece.append(doc)
            tokens += len(doc)
        if piece:
            yield first, piece


def ground_truth(col: Collection, k: int) -> list[list[int]]:
    """Exhaustive MaxSim over raw vectors for all queries at once, streamed in pieces of ~64k
    tokens so the similarity matrix stays near 1 GB for 100 queries."""
    q = torch.from_numpy(np.concatenate(col.queries))
    bounds = np.cumsum([0] + [len(x) for x in col.queries])
    best_scores = torch.full((len(col.queries), k), -1e9)
    best_ids = torch.full((len(col.queries), k), -1, dtype=torch.long)
    for start, docs in _token_bounded(col):
        counts = np.array([len(d) for d in docs])
        sims = q @ torch.from_numpy(np.concatenate(docs)).T  # [all query tokens, piece tokens]
        seg_starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        per_doc = torch.from_numpy(np.maximum.reduceat(sims.numpy(), seg_starts, axis=1))
        scores = torch.stack([per_doc[bounds[i]:bounds[i + 1]].sum(0) for i in range(len(col.queries))])
        ids = torch.arange(start, start + len(docs)).expand(len(col.queries), -1)
        top = torch.cat([best_scores, scores], 1).topk(k, dim=1)
        best_scores, best_ids = top.values, torch.cat([best_ids, ids], 1).gather(1, top.indices)
    return best_ids.tolist()


def subset_positions(n_queries: int, n: int) -> list[int]:
    """n of n_queries positions, evenly spaced: every language of a real collection's queries is kept."""
    return np.linspace(0, n_queries - 1, n).round().astype(int).tolist()


def query_subset(col: Collection, n: int | None) -> Collection:
    """The collection with n of its queries (subset_positions) and their truth: for peers too
    slow to search all of them."""
    if not n or n >= len(col.queries):
        return col
    keep = subset_positions(len(col.queries), n)
    return Collection(col.name, col.n_docs, col.n_tokens, [col.queries[i] for i in keep], col.chunks,
                      {k: [t[i] for i in keep] for k, t in col.truth.items()}, col.dim)


