"""A searchable collection of texts: the encoder, the index, and the chunking between them.

The index stores chunks; users think in documents. A document `id` is stored as chunks
`id#0`, `id#1`, ... whose metadata holds `doc_id`, `chunk`, `start_char`, `end_char` (and
`page` for PDFs), so that replacing or deleting a document touches all of its chunks in one
atomic commit. The CLI, the ingestion pipeline and the HTTP API all write through here.

    engine = SearchEngine.open("indexes/default", model="path/to/model", create=True)
    engine.upsert([TextDocument("faq", long_text, {"lang": "en"})])
    hits = engine.search(["how do I reset it?"], k=5)[0]
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .encoder import ColBERTEncoder
from .index import Hit, IndexFolderError, IndexLockedError, MultiVectorIndex, SearchParams
from .index.index import merge_candidates
from .chunking import Chunker, ChunkingOptions
from .fusion import FUSION_DEPTH, MODES, fuse, resolve
from .language import language_of
from .locations import default_model, model_source

RESERVED_METADATA = ("doc_id", "chunk", "start_char", "end_char")


@dataclass
class TextDocument:
    id: str
    text: str
    metadata: dict[str, Any] = field(default_factory=dict)
    title: str = ""
    # (character offset, page) where each page starts, for PDFs: chunks then carry `page`.
    page_starts: list[tuple[int, int]] | None = None
    # (character offset, heading path) where each section starts, for Markdown and HTML: chunks
    # follow section edges and carry `section`.
    sections: list[tuple[int, str]] | None = None

    def page_at(self, offset: int) -> int | None:
        return _value_at(self.page_starts, offset)

    def section_at(self, offset: int) -> str | None:
        return _value_at(self.sections, offset)


def _value_at(starts: list[tuple[int, Any]] | None, offset: int) -> Any:
    """The value of the last (start, value) at or before `offset`."""
    value = None
    for start, item in starts or []:
        if start > offset:
            break
        value = item
    return value


@dataclass
class PreparedChunk:
    id: str
    text: str
    metadata: dict[str, Any]
    n_tokens: int


@dataclass
class WriteSummary:
    documents: int
    chunks: int
    commit: int


def clean_text(text: str) -> str:
    """Text that every tokenizer accepts: lone surrogates (possible in JSON) become U+FFFD."""
    return text.encode("utf-8", errors="replace").decode("utf-8") if not text.isascii() else text


def chunk_id(doc_id: str, number: int) -> str:
    return f"{doc_id}#{number}"


# Per-document results come from a deeper list of chunks: a document's chunks crowd the top of
# a chunk ranking (one long page can fill it), so k documents need several times k chunks.
CHUNKS_PER_DOCUMENT = 5
MAX_POOL = 1000


def one_per_document(hits: Sequence[Hit], k: int) -> list[Hit]:
    """The best chunk of each document, best documents first, each with `matched_chunks` in its
    metadata: how many of the document's chunks the ranked list held."""
    best: dict[str, Hit] = {}
    counts: dict[str, int] = {}
    for hit in hits:
        doc = str(hit.metadata.get("doc_id", hit.id))
        counts[doc] = counts.get(doc, 0) + 1
        best.setdefault(doc, hit)
    return [Hit(h.id, h.score, h.text, {**h.metadata, "matched_chunks": counts[doc]})
            for doc, h in list(best.items())[:k]]


class SearchEngine:
    def __init__(self, index: MultiVectorIndex, encoder: ColBERTEncoder,
                 chunking: ChunkingOptions | None = None) -> None:
        self.index = index
        self.encoder = encoder
        self.chunking = (chunking or ChunkingOptions()).fitted_to(encoder.config.document_length)
        self.chunker = Chunker(encoder.tokenizer.tokenizer, self.chunking)
        self._write_lock = threading.Lock()  # one writer per process; flock guards between processes
        self._refreshed_at = time.monotonic()
        # Small writes (one segment each) are merged in the background, one merge at a time.
        self.auto_merge = True
        self._merging = threading.Lock()

    @classmethod
    def open(cls, index_path: str | Path, model: str | None = None, create: bool = False, nbits: int = 4,
             chunking: ChunkingOptions | None = None, dtype: str = "float32") -> "SearchEngine":
        """Open an index with the model it was built with (or `model`); create it if asked."""
        index_path = Path(index_path)
        exists = (index_path / "manifest.json").exists()
        if not exists and not create:
            raise IndexFolderError(f"no index at {index_path}; build one with `lfm2-search index PATH --index {index_path}`")
        index = MultiVectorIndex(index_path) if exists else None
        name = model or (index.manifest.get("model_source") if index else None) or default_model()
        encoder = ColBERTEncoder.from_pretrained(name, dtype=dtype)
        if index is None:
            index = MultiVectorIndex.create(index_path, dim=encoder.dim, nbits=nbits, exist_ok=True,
                                            model_fingerprint=encoder.fingerprint, model_source=model_source(name))
        index.check_compatible(encoder.dim, encoder.fingerprint)
        return cls(index, encoder, chunking)

    # ------------------------------------------------------------------ reading
    def refresh(self, max_age: float = 0.0) -> None:
        """See commits made since the last look (by this process or another one)."""
        if time.monotonic() - self._refreshed_at >= max_age:
            self.index.refresh()
            self._refreshed_at = time.monotonic()

    def encode_queries(self, queries: Sequence[str]) -> list[np.ndarray]:
        texts = [clean_text(q) for q in queries]
        for q in texts:
            if not q.strip():
                raise ValueError("a query must contain some text")
        return self.encoder.encode_queries(texts)

    def search(self, queries: Sequence[str], k: int = 10, filter: dict | None = None, mode: str = "hybrid",
               alpha: float | None = None, fusion: str | None = None, per_document: bool = False) -> list[list[Hit]]:
        """Top-k chunks per query. mode: hybrid (the default: MaxSim and BM25, fused), semantic
        (MaxSim) or lexical (BM25). Hybrid fuses by `fusion` "rrf" (reciprocal rank fusion) or
        "interpolation" of normalised scores with semantic weight `alpha`; neither means the
        default of lfm2_retrieval.fusion.
        per_document: the top-k documents instead, each as its best chunk (one_per_document)."""
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}")
        resolve(fusion, alpha)  # bad fusion settings fail before any work
        vectors = self.encode_queries(queries) if mode != "lexical" else None
        return self.search_encoded(vectors, k, filter, mode=mode, alpha=alpha, fusion=fusion, texts=queries,
                                   per_document=per_document)

    def search_encoded(self, vectors: list[np.ndarray] | None, k: int = 10, filter: dict | None = None,
                       mode: str = "hybrid", alpha: float | None = None, fusion: str | None = None,
                       texts: Sequence[str] | None = None, per_document: bool = False) -> list[list[Hit]]:
        """Search with query vectors already encoded (and the query texts, for lexical modes)."""
        if per_document:
            return self._per_document(vectors, k, filter, mode, alpha, fusion, texts)
        self.refresh(max_age=0.5)
        if mode == "semantic":
            return self.index.search(vectors, k=k, filter=filter)
        if texts is None:
            raise ValueError(f"{mode} search needs the query texts")
        texts = [clean_text(t) for t in texts]
        if mode == "lexical":
            return self.index.search_lexical(texts, k=k, filter=filter)
        fusion, alpha = resolve(fusion, alpha)
        depth = max(k, FUSION_DEPTH)  # fuse deeper lists than asked for: a document can rise
        # The semantic side keeps the search effort of k: its exact stage already scores far
        # more than `depth` documents, so the deeper list costs nothing extra.
        effort = SearchParams.for_k(k, self.index.manifest["nbits"])
        semantic = self.index.search(vectors, k=depth, filter=filter, params=effort)
        lexical = self.index.search_lexical(texts, k=depth, filter=filter)
        out = []
        for sem, lex in zip(semantic, lexical):
            by_id = {h.id: h for h in [*lex, *sem]}
            fused = fuse([(h.id, h.score) for h in sem], [(h.id, h.score) for h in lex], fusion, alpha)[:k]
            out.append([Hit(doc_id, score, by_id[doc_id].text, by_id[doc_id].metadata) for doc_id, score in fused])
        return out

    def _per_document(self, vectors, k, filter, mode, alpha, fusion, texts) -> list[list[Hit]]:
        """Rank chunks deeper than k, keep each document's best; deepen (to MAX_POOL chunks) while
        a query's list came back full yet holds fewer than k documents."""
        n = len(vectors) if vectors is not None else len(texts)
        out: list[list[Hit] | None] = [None] * n
        depth = min(MAX_POOL, k * CHUNKS_PER_DOCUMENT)
        todo = list(range(n))
        while todo:
            pool = self.search_encoded(None if vectors is None else [vectors[i] for i in todo], depth, filter, mode,
                                       alpha, fusion, None if texts is None else [texts[i] for i in todo])
            again = []
            for i, hits in zip(todo, pool):
                out[i] = one_per_document(hits, k)
                if len(out[i]) < k and len(hits) == depth and depth < MAX_POOL:
                    again.append(i)
            todo, depth = again, min(MAX_POOL, depth * 4)
        return out

    def explain_hits(self, query: str, hits: Sequence[Hit], query_vectors: np.ndarray | None = None) -> list[list]:
        """For each hit, why it matched: each query token's best token of the chunk (explain.py),
        from the vectors the index stored."""
        from .explain import explain

        if query_vectors is None:
            query_vectors = self.encode_queries([query])[0]
        stored = self.index.vectors([h.id for h in hits])
        return [[] if v is None else explain(self.encoder, query, query_vectors, h.text, v)
                for h, v in zip(hits, stored)]

    def chunk_ids(self, doc_ids: Iterable[str]) -> dict[str, list[str]]:
        """The stored chunk ids of each document (documents with none are left out)."""
        wanted = list(dict.fromkeys(doc_ids))
        out: dict[str, list[str]] = {}
        if not wanted:
            return out
        for cid, meta in self.index.scan_metadata(["doc_id"], {"doc_id": {"$in": wanted}}):
            out.setdefault(meta["doc_id"], []).append(cid)
        return out

    # ------------------------------------------------------------------ preparing documents
    def prepare(self, doc: TextDocument) -> list[PreparedChunk]:
        """A document's chunks with their ids and metadata (document metadata is copied to each)."""
        clash = [k for k in RESERVED_METADATA if k in doc.metadata]
        if clash:
            raise ValueError(f"metadata keys {clash} are reserved (set by the engine for each chunk)")
        out = []
        section_starts = [start for start, _ in doc.sections or []]
        text = clean_text(doc.text)
        # A document that says its language keeps it; else each chunk is identified (a page can
        # mix languages), falling back to the whole text's language where a chunk is unclear.
        detect = "lang" not in doc.metadata
        doc_lang = language_of(text) if detect else None
        for number, chunk in enumerate(self.chunker.split(text, section_starts)):
            meta = {**doc.metadata, "doc_id": doc.id, "chunk": number,
                    "start_char": chunk.start, "end_char": chunk.end}
            if doc.title:
                meta["title"] = doc.title
            if doc.page_starts:
                meta["page"] = doc.page_at(chunk.start)
            if doc.sections and (section := doc.section_at(chunk.start)):
                meta["section"] = section
            if detect and (lang := language_of(chunk.text, default=doc_lang)):
                meta["lang"] = lang
            out.append(PreparedChunk(chunk_id(doc.id, number), chunk.text, meta, chunk.n_tokens))
        return out

    def encode_chunks(self, chunks: Sequence[PreparedChunk]) -> list[np.ndarray]:
        return self.encoder.encode_documents([c.text for c in chunks])

    # ------------------------------------------------------------------ writing
    def upsert(self, documents: Sequence[TextDocument], replace: bool = True, timeout: float = 10.0) -> WriteSummary:
        """Add documents, replacing earlier versions of the same ids, in one atomic commit.

        With replace=False an id that already exists raises KeyError and nothing is written.
        Encoding happens before the writer lock is taken, so other writers wait only for the commit.
        """
        ids = [d.id for d in documents]
        if len(set(ids)) != len(ids):
            raise ValueError("the same document id appears twice in one request")
        prepared = [self.prepare(d) for d in documents]
        for doc, doc_chunks in zip(documents, prepared):
            if not doc_chunks:
                raise ValueError(f"document {doc.id!r} has no text")
        chunks = [c for doc_chunks in prepared for c in doc_chunks]
        vectors = self.encode_chunks(chunks) if chunks else []
        with self._write_lock, self.index.writer(timeout=timeout) as writer:
            old = self.chunk_ids(ids)  # read under the lock: the writer refreshed the index
            if old and not replace:
                raise KeyError(f"{len(old)} document id(s) already exist (e.g. {next(iter(old))!r})")
            writer.delete([cid for cids in old.values() for cid in cids])
            if chunks:
                writer.add([c.id for c in chunks], vectors, [c.text for c in chunks], [c.metadata for c in chunks])
        self._refreshed_at = time.monotonic()
        summary = WriteSummary(len(documents), len(chunks), self.index.commit)
        self._merge_in_background()
        return summary

    def delete(self, ids: Sequence[str], timeout: float = 10.0) -> int:
        """Delete documents (all their chunks) or single chunks by id; returns chunks deleted.

        An id that names a document means that document only: "X#1" deletes the document
        "X#1", never chunk 1 of a document "X" as well. An id that names no document may name
        a chunk."""
        with self._write_lock, self.index.writer(timeout=timeout) as writer:
            documents = self.chunk_ids(ids)
            targets = [cid for cids in documents.values() for cid in cids]
            n = writer.delete(targets + [i for i in dict.fromkeys(ids) if i not in documents])
        self._refreshed_at = time.monotonic()
        return n

    def _merge_in_background(self) -> None:
        """Start a tiered merge in a thread when the index has too many segments; a merge already
        running, or another process's writer, means this one is skipped (the next write retries)."""
        if not self.auto_merge or not merge_candidates(self.index.manifest["segments"]):
            return
        if not self._merging.acquire(blocking=False):
            return

        def merge() -> None:
            try:
                with self._write_lock:
                    self.index.merge_segments(timeout=0.0)
            except IndexLockedError:
                pass  # someone else is writing; the next write tries again
            except Exception:  # noqa: BLE001 - a failed merge leaves the last commit; never the caller's problem
                logging.getLogger(__name__).exception("background merge failed; the index keeps its segments")
            finally:
                self._merging.release()

        self._merge_thread = threading.Thread(target=merge, name="lfm2-search-merge", daemon=True)
        self._merge_thread.start()

    def wait_for_merges(self, timeout: float | None = None) -> None:
        """Block until a background merge (if any) has finished."""
        thread = getattr(self, "_merge_thread", None)
        if thread is not None:
            thread.join(timeout)
