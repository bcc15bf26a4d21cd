"""A searchable collection of documents: one index, one encoder, and the chunking between them.

    engine = SearchEngine.open("indexes/default", create=True)   # the embedded model by default
    engine.upsert([TextDocument("faq", long_text, {"lang": "en"})])
    hits = engine.search(["how do I reset it?"], k=5)[0]
    answer = engine.answer(SearchRequest(query="how do I reset it?", k=5, explain=True))

Users add documents; the index stores their chunks (documents.py). The engine is the one door to
an index: searching (semantic, lexical, hybrid; per chunk or per document), reading what is
stored, and writing through sessions (session.py) that the CLI, the ingestion pipeline and the
HTTP API all use. The model loads on first need, so commands that only read or delete stored
chunks (info, list, delete, optimize) never pay for it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import (DocumentExistsError, IndexFolderError, IndexLockedError, InvalidDocumentError,
                      InvalidRequestError, ModelUnavailableError)
from ..index import CheckReport, Counts, Hit, Manifest, MultiVectorIndex, SearchParams, check_index, repair_index
from ..index.analysis import Analysis
from ..index.contract import SearchableIndex
from ..index.dense import DenseSlot
from ..index.filters import validate as validate_filter
from ..index.writer import merge_candidates
from ..model.locations import default_model, model_source
from ..index.integrity import Problem
from ..shards import ShardedIndex, ShardMap, is_sharded, shard_policy_for
from .calibration import Calibration, margins
from .chunking import Chunker, ChunkingOptions
from .documents import DocumentSummary, PreparedChunk, TextDocument, chunk_document, clean_text, iter_chunk_document
from .snippets import snippet
from .fusion import FUSION_DEPTH, fuse_legs
from .request import MAX_QUERIES, QueryAnswer, SearchAnswer, SearchRequest
from .session import WriteSession, chunk_ids_of

if TYPE_CHECKING:  # torch loads with the model, on the first semantic search: never for a lexical one
    from ..model.encoder import ColBERTEncoder


@dataclass
class WriteSummary:
    documents: int
    chunks: int
    commit: int  # the commit the write made (its reader may still be at an earlier one)


@dataclass
class DeleteSummary:
    chunks: int  # chunks deleted (0: nothing matched, and no commit was made)
    commit: int


# Per-document results come from a deeper list of chunks: a document's chunks crowd the top of
# a chunk ranking (one long page can fill it), so k documents need several times k chunks.
CHUNKS_PER_DOCUMENT = 5
MAX_POOL = 1000


def _dense_encoder_and_slot(spec: str, colbert) -> tuple[Any, DenseSlot]:
    """The dense encoder a spec names (model/dense_encoders.py) and the slot it fills."""
    from ..model.dense_encoders import load_dense_encoder

    try:
        encoder = load_dense_encoder(spec, colbert)
    except ValueError as exc:
        raise InvalidRequestError(str(exc)) from None
    return encoder, DenseSlot(spec, encoder.dim, encoder.id)


@dataclass
class Queries:
    """A request's queries as each leg reads them: texts (BM25), token vectors (MaxSim, None
    when no leg needs them) and dense vectors (None without a dense leg)."""

    texts: Sequence[str]
    vectors: Sequence[np.ndarray] | None
    dense: np.ndarray | None

    def subset(self, rows: list[int]) -> "Queries":
        return Queries([self.texts[i] for i in rows], None if self.vectors is None else [self.vectors[i] for i in rows],
                       None if self.dense is None else self.dense[rows])


@dataclass
class Ranked:
    """One query's ranking: its hits, best first; in hybrid mode each leg's share of each hit's
    fused score (by id); where the model has a calibration, each hit's relevance (by id)."""

    hits: list[Hit]
    legs: dict[str, dict[str, float]] | None = None
    relevance: dict[str, float] | None = None


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


def _leg_scores(leg: Sequence[Hit], hits: Sequence[Hit]) -> list[float]:
    """Each hit's raw score in one leg of a hybrid search; a hit the leg did not return takes the
    leg's lowest (it scored at most that there), 0 when the leg returned nothing."""
    scores = {h.id: h.score for h in leg}
    floor = min(scores.values(), default=0.0)
    return [scores.get(h.id, floor) for h in hits]


def calibrated(calibration: Calibration | None, mode: str, hits: Sequence[Hit], query_vectors: int,
               maxsim: Sequence[float] | None = None, bm25: Sequence[float] | None = None) -> dict[str, float] | None:
    """Each hit's relevance by id (calibration.py's features from the hits' raw scores), or None."""
    if calibration is None or mode not in calibration.weights or not hits:
        return None
    rank = np.arange(1, len(hits) + 1, dtype=np.float64)
    maxsim_mean = None if maxsim is None else np.asarray(maxsim, np.float64) / max(query_vectors, 1)
    bm25 = None if bm25 is None else np.asarray(bm25, np.float64)
    margin = margins(mode, 0, maxsim_mean, bm25, np.array([h.score for h in hits], np.float64))
    relevance = calibration.relevance(mode, rank=rank, margin=margin, maxsim=maxsim_mean, bm25=bm25)
    return {h.id: round(float(p), 4) for h, p in zip(hits, relevance)}


def _default_model_or_none() -> str | None:
    try:
        return default_model()
    except ModelUnavailableError:
        return None


class SearchEngine:
    def __init__(self, index: SearchableIndex, encoder: ColBERTEncoder | None = None,
                 chunking: ChunkingOptions | None = None, model: str | None = None, dtype: str = "float32") -> None:
        """`encoder`, or the model to load when one is first needed: `model`, else the one the
        index was built with, else the default (model/locations.py)."""
        self.index = index
        self._encoder = encoder
        self._model, self._dtype = model, dtype
        self._chunking_asked = chunking
        self._chunker: Chunker | None = None
        # A one-shot process (a search from the shell) may encode its queries without torch
        # (model/numpy_queries.py, the same vectors): queries_without_torch.
        self.queries_without_torch = False
        self._numpy_queries = None
        self._dense_encoder = None  # the dense slot's encoder, loaded on first need
        self._dense_spec: str | None = None  # the slot's encoder spec it was loaded for
        self._loading = threading.RLock()  # re-entered: the dense head loads the model
        self._calibrations: dict[str, Calibration | None] = {}  # by model folder (calibration.py)
        self._write_lock = threading.Lock()  # one writer per process; flock guards between processes
        self._refreshed_at = time.monotonic()
        # Small writes (one segment each) are merged in the background, one merge at a time.
        self.auto_merge = True
        self._merging = threading.Lock()
        if encoder is not None:
            index.check_compatible(encoder.dim, encoder.fingerprint)

    @classmethod
    def open(cls, index_path: str | Path, model: str | None = None, create: bool = False, nbits: int = 4,
             chunking: ChunkingOptions | None = None, dtype: str = "float32", shards: int = 1,
             dense: str | None = None, analysis: Analysis | None = None) -> "SearchEngine":
        """Open an index (sharded or not) with the model it was built with (or `model`); create
        it if asked, as `shards` shards if more than one (shards/). dense: a new index keeps a
        dense vector per chunk from this encoder ("model": the model's dense head, "e5", or a
        sentence-transformers folder; model/dense_encoders.py); an existing one must have it.
        analysis: how a new index's BM25 reads text (index/analysis.py; default: per language)."""
        index_path = Path(index_path)
        if is_sharded(index_path) or (index_path / "manifest.json").exists():
            index = ShardedIndex(index_path) if is_sharded(index_path) else MultiVectorIndex(index_path)
            engine = cls(index, chunking=chunking, model=model, dtype=dtype)
            engine._check_dense_asked(dense)
            return engine
        if not create:
            raise IndexFolderError(
                f"no index at {index_path}; build one with `lfm2-search index PATH --index {index_path}`"
            )
        from ..model.encoder import ColBERTEncoder

        name = model or default_model()
        encoder = ColBERTEncoder.from_pretrained(name, dtype=dtype)
        dense_encoder, slot = _dense_encoder_and_slot(dense, lambda: encoder) if dense is not None else (None, None)
        common = dict(dim=encoder.dim, nbits=nbits, model_fingerprint=encoder.fingerprint,
                      model_source=model_source(name), dense=slot, analysis=analysis)
        if shards > 1:
            index = ShardedIndex.create(index_path, shards, **common)
        else:
            index = MultiVectorIndex.create(index_path, exist_ok=True, **common)
        engine = cls(index, encoder, chunking)
        engine._dense_encoder, engine._dense_spec = dense_encoder, dense
        return engine

    def _check_dense_asked(self, dense: str | None) -> None:
        slot = self.dense_slot
        if dense is None or (slot is not None and slot.encoder == dense):
            return
        if slot is None:
            raise InvalidRequestError(f"the index at {self.path} has no dense vectors: fill them with "
                                      f"`lfm2-search add-dense --index {self.path} --dense {dense}`")
        raise InvalidRequestError(f"the index at {self.path} keeps dense vectors of {slot.encoder!r}, not {dense!r}: "
                                  f"replace them with `lfm2-search add-dense --index {self.path} --dense {dense}`")

    @property
    def sharded(self) -> bool:
        return self.index.capabilities.shards

    @property
    def calibration(self) -> Calibration | None:
        """The model's relevance calibration (calibration.py; None: it has none). Read from the
        model's folder without loading the model, so a lexical search stays light."""
        if self._encoder is not None:
            folder = self._encoder.source_dir
        else:
            name = self._model or self.index.manifest.model_source or _default_model_or_none()
            folder = name if name is not None and Path(name).is_dir() else None
        key = str(folder)
        if key not in self._calibrations:
            self._calibrations[key] = Calibration.load(folder)
        return self._calibrations[key]

    @property
    def encoder(self) -> ColBERTEncoder:
        """The model, loaded on first use and checked against the index's vectors."""
        if self._encoder is None:
            with self._loading:
                if self._encoder is None:
                    from ..model.encoder import ColBERTEncoder

                    name = self._model or self.index.manifest.model_source or default_model()
                    encoder = ColBERTEncoder.from_pretrained(name, dtype=self._dtype)
                    self.index.check_compatible(encoder.dim, encoder.fingerprint)
                    self._encoder = encoder
        return self._encoder

    @property
    def dense_slot(self) -> DenseSlot | None:
        """The index's dense slot (None: token vectors and BM25 only)."""
        return self.index.manifest.dense_slot

    @property
    def dense_encoder(self):
        """The encoder of the dense slot (model/dense_encoders.py), loaded on first use."""
        slot = self.dense_slot
        if slot is None:
            raise InvalidRequestError("this index has no dense vectors (fill them: lfm2-search add-dense)")
        # Loaded again when the slot changed hands (add-dense by another process, then a refresh).
        if self._dense_encoder is None or self._dense_spec != slot.encoder:
            from ..model.dense_encoders import load_dense_encoder

            with self._loading:
                if self._dense_encoder is None or self._dense_spec != slot.encoder:
                    encoder = load_dense_encoder(slot.encoder, lambda: self.encoder)
                    if encoder.dim != slot.dim:
                        raise InvalidRequestError(f"the dense encoder {slot.encoder!r} gives {encoder.dim}-d "
                                                  f"vectors; the index keeps {slot.dim}-d ones")
                    self._dense_encoder, self._dense_spec = encoder, slot.encoder
        return self._dense_encoder

    def encode_dense_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self.dense_encoder.embed(list(texts), "query")

    @property
    def chunking(self) -> ChunkingOptions:
        return (self._chunking_asked or ChunkingOptions()).fitted_to(self.encoder.config.document_length)

    @property
    def chunker(self) -> Chunker:
        if self._chunker is None:
            self._chunker = Chunker(self.encoder.tokenizer.tokenizer, self.chunking)
        return self._chunker

    # ------------------------------------------------------------------ what is stored
    @property
    def path(self) -> Path:
        return self.index.path

    @property
    def commit(self) -> int:
        return self.index.commit

    def __len__(self) -> int:
        """Stored chunks."""
        return len(self.index)

    @property
    def counts(self) -> Counts:
        return self.index.manifest.counts

    @property
    def user_data(self) -> dict[str, Any]:
        """What the application recorded with the current commit (WriteSession.set_user_data)."""
        return dict(self.index.manifest.user_data)

    @property
    def model_source(self) -> str | None:
        """The model the index was built with, as recorded in it."""
        return self.index.manifest.model_source

    @property
    def segment_count(self) -> int:
        return len(self.index.manifest.segments)

    def refresh(self, max_age: float = 0.0) -> None:
        """See commits made since the last look (by this process or another one)."""
        if time.monotonic() - self._refreshed_at >= max_age:
            self.index.refresh()
            self._refreshed_at = time.monotonic()

    def stats(self) -> dict[str, Any]:
        """What `lfm2-search info` shows: documents and chunks, tokens, segments, codec, model, size."""
        documents, sources = set(), set()
        for chunk, meta in self.index.scan_metadata(["source", "doc_id"]):
            documents.add(meta["doc_id"] or chunk)  # a chunk stored without a document is its own
            sources.add(meta["source"])
        return {"path": str(self.path), "documents": len(documents), **self.index.stats(),
                "model": self.model_source, "source files": len(sources - {None, ""})}

    def documents(self) -> list[DocumentSummary]:
        """Every stored document, in storage order, with its chunk count."""
        docs: dict[str, DocumentSummary] = {}
        for cid, meta in self.index.scan_metadata(["doc_id", "source", "title"]):
            key = meta["doc_id"] or cid
            entry = docs.setdefault(key, DocumentSummary(key, 0, meta["source"], meta["title"]))
            entry.chunks += 1
        return list(docs.values())

    def chunk_metadata(self, keys: Sequence[str], filter: dict | None = None) -> Iterable[tuple[str, dict[str, Any]]]:
        """(chunk id, {key: value}) of every stored chunk matching `filter`, reading only metadata."""
        return self.index.scan_metadata(keys, filter)

    def chunk_ids(self, doc_ids: Iterable[str]) -> dict[str, list[str]]:
        """The stored chunk ids of each document (documents with none are left out)."""
        return chunk_ids_of(self.index, doc_ids)

    def field_values(self, max_values: int, exclude: Iterable[str] = ()) -> dict[str, list[tuple[Any, int]]]:
        """{field: [(value, chunks), ...] most frequent first} for every metadata field whose values
        are few labels (strings, booleans, integers; at most `max_values` of them): what a search
        page can offer as filters."""
        skip = set(exclude)
        keys = sorted({name for seg in self.index.snapshot.segments for name in seg.metadata_table.column_names
                       if name not in skip and not name.startswith("__")})
        counts: dict[str, dict] = {k: {} for k in keys}
        for _, meta in self.index.scan_metadata(keys):
            for key, value in meta.items():
                values = counts.get(key)
                if values is None or value is None or isinstance(value, float):
                    continue
                values[value] = values.get(value, 0) + 1
                if len(values) > max_values:
                    del counts[key]  # too many values to choose from: not a label
        return {k: sorted(v.items(), key=lambda kv: -kv[1]) for k, v in counts.items() if v}

    @staticmethod
    def commit_of(index_path: str | Path) -> int | None:
        """The commit an index folder is at, read without opening it (None: no readable index)."""
        try:
            return Manifest.read(Path(index_path)).commit
        except Exception:
            return None

    @staticmethod
    def check(index_path: str | Path, full: bool = False) -> CheckReport:
        """`lfm2-search check`: works on an index too damaged to open. A sharded index is checked
        shard by shard (parts named "shard-NNN/...")."""
        if not is_sharded(index_path):
            return check_index(index_path, full=full)
        shard_map = ShardMap.read(Path(index_path))
        report = CheckReport(shard_map.commit, full=full)
        for name in shard_map.shards:
            part = check_index(Path(index_path) / name, full=full)
            report.checked.extend(f"{name}/{c}" for c in part.checked)
            report.problems.extend(Problem(f"{name}/{p.part}", p.problem) for p in part.problems)
        return report

    @staticmethod
    def repair(index_path: str | Path, report: CheckReport) -> dict[str, Any]:
        """`lfm2-search check --repair`: a new commit without the damaged parts of `report`."""
        if is_sharded(index_path):
            raise InvalidRequestError("check --repair works on one index, not on a sharded one: rebuild the damaged "
                                      "shard's documents (or split a repaired unsharded index again)")
        return repair_index(index_path, report)

    # ------------------------------------------------------------------ searching
    def encode_queries(self, queries: Sequence[str]) -> list[np.ndarray]:
        """Query vectors of texts given directly (a SearchRequest's texts are already clean)."""
        texts = [clean_text(q) for q in queries]
        for q in texts:
            if not q.strip():
                raise InvalidRequestError("a query must contain some text")
        return self._query_encoder().encode_queries(texts)

    def _query_encoder(self):
        """What encodes queries: the model (torch), or, where queries_without_torch is set and the
        model is not loaded yet, its query path in numpy, checked against the index like the
        model. A folder numpy cannot read exactly (model/numpy_queries.Unsupported) gets torch."""
        if self._encoder is not None or not self.queries_without_torch:
            return self.encoder
        if self._numpy_queries is None:
            from ..model.numpy_queries import NumpyQueryEncoder, Unsupported

            with self._loading:
                try:
                    name = self._model or self.index.manifest.model_source or default_model()
                    numpy_queries = NumpyQueryEncoder.from_pretrained(name)
                except Unsupported:
                    self.queries_without_torch = False
                    return self.encoder
                self.index.check_compatible(numpy_queries.dim, numpy_queries.fingerprint)
                self._numpy_queries = numpy_queries
        return self._numpy_queries

    def search(self, queries: Sequence[str], k: int = 10, filter: dict | None = None, mode: str = "hybrid",
               alpha: float | None = None, fusion: str | None = None, per_document: bool = False,
               offset: int = 0, dense_weight: float | None = None) -> list[list[Hit]]:
        """Top-k chunks per query: the fields of a SearchRequest (request.py), checked as the
        HTTP API checks them (InvalidRequestError, FilterError). mode: hybrid (the default:
        MaxSim and BM25, fused, and the dense vectors where the index has them), semantic
        (MaxSim), lexical (BM25) or dense; hybrid fuses by `fusion` "rrf" or "interpolation" with
        semantic weight `alpha` and dense weight `dense_weight` (neither: the defaults of
        engine/fusion.py). per_document: the top-k documents, each as its best chunk. Any
        number of queries (a request holds at most MAX_QUERIES: they go in groups)."""
        out: list[list[Hit]] = []
        for start in range(0, len(queries), MAX_QUERIES):
            request = SearchRequest.of(queries=list(queries[start:start + MAX_QUERIES]), k=k, offset=offset,
                                       filter=filter, mode=mode, alpha=alpha, fusion=fusion, per_document=per_document,
                                       dense_weight=dense_weight)
            out.extend(result.hits for result in self.answer(request).results)
        return out

    def answer(self, request: SearchRequest, vectors: Sequence[np.ndarray] | None = None,
               shard_timeout_s: float | None = None, dense: np.ndarray | None = None) -> SearchAnswer:
        """The one way a search runs, whoever asked: encode the queries (unless `vectors` and
        `dense` are given: the HTTP API batches the encoding of concurrent requests), rank (per
        chunk or per document), cut the page at offset, explain if asked. shard_timeout_s: on a
        sharded index, how long a shard may take (request.allow_partial: then the others answer
        alone)."""
        started = time.perf_counter()
        texts = request.texts
        if vectors is None and request.needs_vectors:
            vectors = self._query_encoder().encode_queries(texts)
        self.refresh(max_age=0.5)
        queries = Queries(texts, vectors, self._dense_queries(request, texts) if dense is None else np.asarray(dense))
        with shard_policy_for(shard_timeout_s, request.allow_partial) as shards:
            if request.per_document:
                ranked = self._per_document(request, queries, request.depth)
            else:
                ranked = self._ranked(request, queries, request.depth)
        results = [QueryAnswer(q, r.hits[request.offset:]) for q, r in zip(texts, ranked)]
        for result, r in zip(results, ranked):
            if r.relevance is not None:
                result.relevance = [r.relevance[h.id] for h in result.hits]
        if request.explain:
            for result, r in zip(results, ranked):
                if r.legs is not None:
                    result.legs = [r.legs.get(h.id, {}) for h in result.hits]
            if vectors is not None:
                for result, query_vectors in zip(results, vectors):
                    result.explanations = self.explain_hits(result.query, result.hits, query_vectors)
        if request.highlight:
            analysis = self.index.manifest.analysis
            for result in results:
                query = self.index.resolve_query(result.query)
                result.snippets = [snippet(h.text, query, analysis, str(h.metadata.get("lang") or ""),
                                           request.snippet_chars) for h in result.hits]
        return SearchAnswer(results, self.commit, round((time.perf_counter() - started) * 1000, 3),
                            list(shards.missing))

    def needs_dense(self, request: SearchRequest) -> bool:
        """Whether the request reads the dense slot: mode dense, or hybrid on an index with one."""
        return request.mode == "dense" or (request.mode == "hybrid" and self.dense_slot is not None)

    def _dense_queries(self, request: SearchRequest, texts: Sequence[str]) -> np.ndarray | None:
        """The queries' dense vectors when the request reads the dense slot (needs_dense)."""
        if not self.needs_dense(request):
            return None
        if self.dense_slot is None:  # mode dense on an index without the slot
            raise InvalidRequestError("mode dense needs an index with dense vectors: build it with --dense, or "
                                      "fill them with `lfm2-search add-dense`")
        return self.encode_dense_queries(texts)

    def _ranked(self, request: SearchRequest, queries: "Queries", depth: int) -> list[Ranked]:
        """The top `depth` chunks of each query in the request's mode, with (hybrid) each hit's
        legs' shares of its fused score, and each hit's relevance where the model has a
        calibration (calibration.py)."""
        calibration = self.calibration
        if request.mode == "semantic":
            found = self.index.search(queries.vectors, k=depth, filter=request.filter)
            return [Ranked(hits, None, calibrated(calibration, "semantic", hits, len(vectors), maxsim=[
                h.score for h in hits])) for hits, vectors in zip(found, queries.vectors)]
        if request.mode == "lexical":
            found = self.index.search_lexical(queries.texts, k=depth, filter=request.filter)
            return [Ranked(hits, None, calibrated(calibration, "lexical", hits, 1, bm25=[h.score for h in hits]))
                    for hits in found]
        if request.mode == "dense":
            return [Ranked(hits) for hits in self.index.search_dense(queries.dense, k=depth, filter=request.filter)]
        fusion, alpha = request.fusion_settings
        fused_depth = max(depth, FUSION_DEPTH)  # fuse deeper lists than asked for: a document can rise
        # The semantic side keeps the search effort of `depth`: its exact stage already scores
        # far more than `fused_depth` documents, so the deeper list costs nothing extra.
        effort = SearchParams.for_k(depth, self.index.manifest.nbits)
        # The legs run one after the other: the dense leg on a thread beside MaxSim gained nothing
        # measurable (MaxSim keeps both cores busy; docs/dense.md), so it has none.
        legs = {"semantic": self.index.search(queries.vectors, k=fused_depth, filter=request.filter, params=effort),
                "lexical": self.index.search_lexical(queries.texts, k=fused_depth, filter=request.filter)}
        if queries.dense is not None:
            legs["dense"] = self.index.search_dense(queries.dense, fused_depth, request.filter)
        out = []
        for q in range(len(queries.texts)):
            by_id = {h.id: h for leg in legs.values() for h in leg[q]}
            fused = fuse_legs({name: [(h.id, h.score) for h in leg[q]] for name, leg in legs.items()},
                              fusion, alpha, request.dense_weight)[:depth]
            hits = [Hit(doc_id, score, by_id[doc_id].text, by_id[doc_id].metadata) for doc_id, score, _ in fused]
            # Fitted on MaxSim and BM25 alone: with a dense leg the fused score means something else.
            relevance = None if "dense" in legs else calibrated(
                calibration, "hybrid", hits, len(queries.vectors[q]), maxsim=_leg_scores(legs["semantic"][q], hits),
                bm25=_leg_scores(legs["lexical"][q], hits))
            out.append(Ranked(hits, {doc_id: shares for doc_id, _, shares in fused}, relevance))
        return out

    def _per_document(self, request: SearchRequest, queries: "Queries",
                      depth: int) -> list[Ranked]:
        """The top `depth` documents of each query: chunks ranked deeper, each document's best
        kept; deepen (to MAX_POOL chunks) while a query's list came back full yet holds fewer
        documents than asked."""
        out = [Ranked([]) for _ in queries.texts]
        pool_depth = min(MAX_POOL, depth * CHUNKS_PER_DOCUMENT)
        todo = list(range(len(queries.texts)))
        while todo:
            pool = self._ranked(request, queries.subset(todo), pool_depth)
            again = []
            for i, ranked in zip(todo, pool):
                out[i] = Ranked(one_per_document(ranked.hits, depth), ranked.legs, ranked.relevance)
                if len(out[i].hits) < depth and len(ranked.hits) == pool_depth and pool_depth < MAX_POOL:
                    again.append(i)
            todo, pool_depth = again, min(MAX_POOL, pool_depth * 4)
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

    # ------------------------------------------------------------------ preparing documents
    def prepare(self, doc: TextDocument) -> list[PreparedChunk]:
        """A document's chunks with their ids and metadata (documents.chunk_document)."""
        return chunk_document(doc, self.chunker)

    def iter_prepare(self, doc: TextDocument) -> Iterator[PreparedChunk]:
        """prepare, one chunk at a time: a long text is tokenised a piece at a time."""
        return iter_chunk_document(doc, self.chunker)

    def encode_chunks(self, chunks: Sequence[PreparedChunk]) -> list[np.ndarray]:
        return self.encoder.encode_documents([c.text for c in chunks])

    def encode(self, chunks: Sequence[PreparedChunk]) -> tuple[list[np.ndarray], np.ndarray | None]:
        """(token vectors, dense vectors or None) of chunks: what the index keeps of them. The
        model's own dense head shares the token vectors' forward pass; another encoder runs apart."""
        slot = self.dense_slot
        if slot is None or not chunks:
            return self.encode_chunks(chunks), None  # the token vectors' one hook (tests count its calls)
        texts = [c.text for c in chunks]
        if slot.encoder == "model":
            return self.encoder.encode_documents_with_dense(texts)
        return self.encode_chunks(chunks), self.dense_encoder.embed(texts, "passage")

    # ------------------------------------------------------------------ writing
    def writing(self, expected_tokens: int | None = None, timeout: float = 10.0, merge: bool = True) -> WriteSession:
        """A writing session (session.py): the one way to change the index. Waits up to `timeout`
        seconds for another writer (in this process or another) before IndexLockedError.

        expected_tokens: for a first build streamed over several batches, about how many tokens
        will come, so the codec gets as many centroids as the whole collection calls for.
        merge: after the commit, merge segments in the background if there are too many (a
        caller that commits many times in a row merges once at its end instead)."""
        self._acquire_write_lock(timeout)
        try:
            writer = self.index.writer(expected_tokens=expected_tokens, timeout=timeout)
        except BaseException:
            self._write_lock.release()
            raise

        def closed(committed: bool) -> None:
            self._refreshed_at = time.monotonic()
            self._write_lock.release()
            if committed and merge:
                try:
                    self._merge_in_background()
                except Exception:
                    logging.getLogger(__name__).exception("could not start a background merge")

        return WriteSession(self.index, writer, closed)

    def upsert(self, documents: Sequence[TextDocument], replace: bool = True, timeout: float = 10.0) -> WriteSummary:
        """Add documents, replacing earlier versions of the same ids, in one atomic commit.

        With replace=False an id that already exists raises DocumentExistsError and nothing is
        written. Encoding happens before the writer lock is taken, so other writers wait only
        for the commit."""
        ids = [d.id for d in documents]
        if len(set(ids)) != len(ids):
            raise InvalidDocumentError("the same document id appears twice in one request")
        prepared = [self.prepare(d) for d in documents]
        for doc, doc_chunks in zip(documents, prepared):
            if not doc_chunks:
                raise InvalidDocumentError(f"document {doc.id!r} has no text")
        chunks = [c for doc_chunks in prepared for c in doc_chunks]
        vectors, dense = self.encode(chunks) if chunks else ([], None)
        with self.writing(timeout=timeout) as session:
            old = session.chunk_ids(ids)
            if old and not replace:
                raise DocumentExistsError(f"{len(old)} document id(s) already exist (e.g. {next(iter(old))!r})")
            session.delete_chunks(cid for cids in old.values() for cid in cids)
            session.add(chunks, vectors, dense)
        return WriteSummary(len(documents), len(chunks), session.commit_number)

    def delete(self, ids: Sequence[str], timeout: float = 10.0) -> int:
        """Delete documents (all their chunks) or single chunks by id in one commit; returns the
        chunks deleted (0: nothing matched, and no commit was made). See WriteSession.delete."""
        with self.writing(timeout=timeout) as session:
            return session.delete(ids)

    def delete_documents(self, doc_ids: Sequence[str], timeout: float = 10.0) -> DeleteSummary:
        """Delete documents by document id only (all their chunks), in one commit: an id never
        names a chunk here, so retrying a delete can never remove something else."""
        with self.writing(timeout=timeout) as session:
            chunks = session.delete_chunks(c for cids in session.chunk_ids(doc_ids).values() for c in cids)
        return DeleteSummary(chunks, session.commit_number)

    def delete_chunks(self, chunk_ids: Sequence[str], timeout: float = 10.0) -> DeleteSummary:
        """Delete single chunks by chunk id only, in one commit."""
        with self.writing(timeout=timeout) as session:
            chunks = session.delete_chunks(chunk_ids)
        return DeleteSummary(chunks, session.commit_number)

    def delete_where(self, filter: dict[str, Any], timeout: float = 10.0) -> DeleteSummary:
        """Delete every chunk whose metadata matches `filter` (index/filters.py's language, checked
        first: a malformed filter deletes nothing), in one commit."""
        checked = validate_filter(filter)
        with self.writing(timeout=timeout) as session:
            chunks = session.delete_where(checked)
        return DeleteSummary(chunks, session.commit_number)

    def optimize(self, reencode: bool = False, nbits: int | None = None, timeout: float = 10.0,
                 analysis: Analysis | None = None) -> None:
        """Merge every segment into one, drop deleted chunks for good, retrain the codec; with
        `reencode` the vectors come fresh from the model instead of the stored ones. BM25 is
        re-analysed: with `analysis`, else the index's own (today's default for an index made
        before analysis existed)."""
        with self._holding_write_lock(timeout):
            dense = self.dense_encoder if reencode and self.dense_slot is not None else None
            self.index.optimize(reencode=self.encoder.encode_documents if reencode else None, nbits=nbits,
                                reencode_dense=None if dense is None else lambda texts: dense.embed(texts, "passage"),
                                analysis=analysis)

    def reanalyze(self, analysis: Analysis, timeout: float = 10.0) -> int:
        """BM25 of every chunk made anew with `analysis` (vectors as they are), one commit;
        returns the chunks analysed."""
        with self._holding_write_lock(timeout):
            n = self.index.reanalyze(analysis, timeout=timeout)
        self.index.refresh()
        return n

    def add_dense(self, dense: str, timeout: float = 10.0) -> int:
        """Give every stored chunk a dense vector from `dense` ("model", "e5" or a
        sentence-transformers folder) and the index that dense slot, in one commit (replacing
        the slot it had). Returns the chunks embedded."""
        encoder, slot = _dense_encoder_and_slot(dense, lambda: self.encoder)
        with self._holding_write_lock(timeout):
            n = self.index.fill_dense(slot, lambda texts: encoder.embed(texts, "passage"), timeout=timeout)
        self.index.refresh()
        self._dense_encoder, self._dense_spec = encoder, dense
        return n

    def merge_segments(self, timeout: float = 0.0) -> int:
        """Tiered merging now (see MultiVectorIndex.merge_segments); returns segments merged away."""
        merged = 0
        with self._holding_write_lock(timeout):
            while n := self.index.merge_segments(timeout=timeout):
                merged += n
        return merged

    def _acquire_write_lock(self, timeout: float) -> None:
        """This process's side of one-writer-at-a-time (the index's file lock is the other)."""
        if not self._write_lock.acquire(timeout=max(timeout, 0.0)):
            raise IndexLockedError(f"index {self.path} is being written by another thread of this process")

    @contextmanager
    def _holding_write_lock(self, timeout: float):
        self._acquire_write_lock(timeout)
        try:
            yield
        finally:
            self._refreshed_at = time.monotonic()
            self._write_lock.release()

    def _merge_in_background(self) -> None:
        """Start a tiered merge in a thread when the index has too many segments; a merge already
        running, or another writer, means this one is skipped (the next write retries)."""
        if not self.auto_merge or not merge_candidates(self.index.manifest.segments):
            return
        if not self._merging.acquire(blocking=False):
            return

        def merge() -> None:
            try:
                self.merge_segments(timeout=0.0)
            except IndexLockedError:
                pass  # someone else is writing; the next write tries again
            except Exception:
                logging.getLogger(__name__).exception("background merge failed; the index keeps its segments")
            finally:
                self._merging.release()

        self._merge_thread = threading.Thread(target=merge, name="lfm2-search-merge", daemon=True)
        self._merge_thread.start()

    def close(self) -> None:
        """Release the index's files once a background merge has finished (the encoder stays
        usable by other engines); the engine cannot search or write afterwards."""
        self.wait_for_merges()
        self.index.close()

    def wait_for_merges(self, timeout: float | None = None) -> None:
        """Block until a background merge (if any) has finished."""
        thread = getattr(self, "_merge_thread", None)
        if thread is not None:
            thread.join(timeout)
