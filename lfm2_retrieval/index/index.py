"""The multi-vector index: a folder of immutable segments, changed only by atomic commits.

    index = MultiVectorIndex.create("indexes/docs", dim=128, nbits=2)
    with index.writer() as w:                  # writer.py: one writer at a time (a file lock)
        w.add(ids, vectors, texts, metadata)   # vectors: one [n_tokens, dim] array per chunk
    hits = index.search(query_vectors, k=10, filter={"lang": "en"})

A row of the index is a chunk: an id, its token vectors (compressed by the codec), its text
(for BM25 and for display) and its metadata. Readers never block and never see a half-written
commit: they search a Snapshot (snapshot.py) of the commit named by manifest.json (manifest.py),
and `refresh()` moves them to the newest one.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import IndexFolderError
from .analysis import Analysis
from .codec import ResidualCodec
from .dense import DenseSlot
from .contract import Capabilities
from .filters import Filter, evaluate, validate
from .analysis import LexicalQuery, query_languages
from .lexical import TermStatistics
from .manifest import MANIFEST, Manifest
from .search import QueryPlan, SearchParams, exhaustive_segment, search_segments
from .segment import Segment
from .snapshot import Hit, Snapshot, load_snapshot
from .writer import MAX_SEGMENTS, IndexWriter, merge_candidates


class MultiVectorIndex:
    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        if not (self.path / MANIFEST).exists():
            raise IndexFolderError(f"no index at {self.path} (no {MANIFEST}); create one first")
        self._segment_cache: dict[str, Segment] = {}
        self._codec_cache: dict[str, ResidualCodec] = {}
        self._current: Snapshot | None = load_snapshot(self.path, self._segment_cache, self._codec_cache)
        self._located: tuple[Snapshot, dict[str, tuple[int, int]]] | None = None

    # ------------------------------------------------------------------ opening
    @classmethod
    def create(cls, path: str | os.PathLike, dim: int, nbits: int = 4, model_fingerprint: str | None = None,
               num_centroids: int | None = None, exist_ok: bool = False,
               model_source: str | None = None, dense: DenseSlot | None = None,
               analysis: Analysis | None = None) -> "MultiVectorIndex":
        """A new empty index folder.

        model_fingerprint: the encoder's fingerprint; vectors of another model are refused.
        model_source: where that model comes from (a folder or hub id), so tools that open
        the index can load the same model without being told.
        dense: a dense slot (index/dense.py): every chunk then also carries one dense vector.
        analysis: how BM25 reads text (index/analysis.py; default: stop words, stems and
        statistics per language, and the title field).
        """
        path = Path(path)
        if (path / MANIFEST).exists():
            if not exist_ok:
                raise IndexFolderError(f"an index already exists at {path}")
            index = cls(path)
            index.check_compatible(dim, model_fingerprint)
            return index
        if nbits not in (1, 2, 4):
            raise ValueError("nbits must be 1, 2 or 4")
        path.mkdir(parents=True, exist_ok=True)
        (path / "segments").mkdir(exist_ok=True)
        Manifest(dim=dim, nbits=nbits, model_fingerprint=model_fingerprint, model_source=model_source,
                 num_centroids=num_centroids, dense=dense.to_json() if dense else None,
                 lexical=(analysis or Analysis()).to_json()).write(path)
        return cls(path)

    def check_compatible(self, dim: int, model_fingerprint: str | None = None) -> None:
        """Whether a model's vectors can be searched in (and added to) this index; the error says
        the ways out, since an upgrade that changes the embedded model lands users here."""
        m = self.manifest
        ways_out = ("search it with the model that built it (--model; a package upgrade can change the embedded "
                    "one, see CHANGELOG.md), search it by words alone (--mode lexical), or index the documents "
                    "again into a new index")
        if m.dim != dim:
            raise IndexFolderError(f"index {self.path} was built with a model of {m.dim}-d vectors, not {dim}-d: "
                                   + ways_out)
        if model_fingerprint and m.model_fingerprint and m.model_fingerprint != model_fingerprint:
            raise IndexFolderError(
                f"index {self.path} was built with model {m.model_fingerprint}, not {model_fingerprint}; vectors of "
                "different models cannot be mixed: " + ways_out
            )

    def refresh(self) -> bool:
        """Move to the newest commit; True if there was one."""
        if Manifest.read(self.path).commit == self._snapshot.commit:
            return False
        self._current = load_snapshot(self.path, self._segment_cache, self._codec_cache)
        self._located = None  # it held the old snapshot (and its mapped files) alive
        return True

    def close(self) -> None:
        """Release this reader's files (open segments, mapped arrays) now rather than when it is
        garbage collected; it cannot be used afterwards. Snapshots it handed out keep their own
        files until they are dropped. A reader can also be used as a context manager."""
        self._current, self._located = None, None
        self._segment_cache.clear()
        self._codec_cache.clear()

    def __enter__(self) -> "MultiVectorIndex":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def _snapshot(self) -> Snapshot:
        if self._current is None:
            raise IndexFolderError(f"this reader of {self.path} is closed; open the index again")
        return self._current

    # ------------------------------------------------------------------ facts
    @property
    def snapshot(self) -> Snapshot:
        """The commit this reader sees; it stays complete however the index changes meanwhile."""
        return self._snapshot

    @property
    def manifest(self) -> Manifest:
        return self._snapshot.manifest

    @property
    def commit(self) -> int:
        return self._snapshot.commit

    @property
    def dim(self) -> int:
        return self.manifest.dim

    def __len__(self) -> int:
        return self.manifest.counts.chunks

    def health(self) -> dict[str, Any]:
        """What a sharded index reports of this index as one of its shards."""
        return {"chunks": len(self), "commit": self.commit}

    def stats(self) -> dict[str, Any]:
        snap = self._snapshot
        disk = sum(f.stat().st_size for f in self.path.rglob("*") if f.is_file())
        m = snap.manifest
        return {"chunks": m.counts.chunks, "tokens": m.counts.tokens, "deleted": m.counts.deleted,
                "commit": snap.commit, "segments": len(snap.segments), "dim": self.dim, "nbits": m.nbits,
                "centroids": snap.codec.num_centroids if snap.codec else 0,
                "model_fingerprint": m.model_fingerprint, "bytes_on_disk": disk,
                "dense": m.dense_slot.to_json() if m.dense_slot else None, "lexical": m.analysis.to_json()}

    # ------------------------------------------------------------------ reading chunks
    def _locate(self, snap: Snapshot) -> dict[str, tuple[int, int]]:
        """id -> (segment, row) of the snapshot's live chunks, built once per snapshot (explain
        and get call it per request; rebuilding it was O(chunks) each time)."""
        cached = self._located
        if cached is not None and cached[0] is snap:
            return cached[1]
        where = {}
        for s, (seg, live) in enumerate(zip(snap.segments, snap.live)):
            for local, ext in enumerate(seg.external_ids):
                if live is None or live[local]:
                    where[ext] = (s, local)
        self._located = (snap, where)
        return where

    def get(self, ids: Sequence[str]) -> list[dict[str, Any] | None]:
        """Stored id, text and metadata of each id (None where absent)."""
        snap = self._snapshot
        where = self._locate(snap)
        out: list[dict[str, Any] | None] = []
        for doc_id in ids:
            loc = where.get(doc_id)
            out.append(None if loc is None else snap.segments[loc[0]].chunks([loc[1]])[0])
        return out

    def vectors(self, ids: Sequence[str]) -> list[np.ndarray | None]:
        """The stored token vectors of each id, decompressed (what search scored; None where absent)."""
        snap = self._snapshot
        where = self._locate(snap)
        out: list[np.ndarray | None] = []
        for doc_id in ids:
            loc = where.get(doc_id)
            if loc is None or snap.codec is None:
                out.append(None)
                continue
            seg = snap.segments[loc[0]]
            positions, _ = seg.token_ranges(np.array([loc[1]]))
            out.append(snap.codec.decompress(seg.codes[positions], seg.residuals[positions]))
        return out

    def scan_metadata(self, keys: Sequence[str], filter: Filter | None = None) -> Iterable[tuple[str, dict[str, Any]]]:
        """(id, {key: value}) of every live chunk (matching `filter`), reading only metadata."""
        filter = None if filter is None else validate(filter)
        snap = self._snapshot
        for seg, mask in zip(snap.segments, self._allowed(snap, filter)):
            values = seg.metadata_values(keys)  # not metadata_table: building Arrow arrays imports pandas
            columns = [values[k] for k in keys]
            local = range(seg.n_docs) if mask is None else np.flatnonzero(mask).tolist()
            ids = seg.external_ids
            for i in local:
                yield ids[i], {k: col[i] for k, col in zip(keys, columns)}

    def ids_where(self, filter: Filter) -> list[str]:
        """Ids of the live chunks whose metadata matches `filter`."""
        return [doc_id for doc_id, _ in self.scan_metadata([], filter)]

    def iter_chunks(self, offset: int = 0, limit: int | None = None) -> Iterable[dict[str, Any]]:
        """Live chunks in storage order (id, text, metadata)."""
        snap, seen = self._snapshot, 0
        for seg, live in zip(snap.segments, snap.live):
            local = np.arange(seg.n_docs) if live is None else np.flatnonzero(live)
            for start in range(0, len(local), 1024):
                for doc in seg.chunks(local[start:start + 1024]):
                    if seen >= offset:
                        yield doc
                    seen += 1
                    if limit is not None and seen >= offset + limit:
                        return

    # ------------------------------------------------------------------ search
    # Searches may be given query plans made from another index with the same codec (the shards
    # of a sharded index on this machine): the centroid scores of a query are computed once.
    capabilities = Capabilities(query_plans=True)

    def search(
        self,
        queries: np.ndarray | Sequence[np.ndarray],
        k: int = 10,
        filter: Filter | None = None,
        exhaustive: bool = False,
        params: SearchParams | None = None,
        plans: Sequence[QueryPlan] | None = None,
        snapshot: Snapshot | None = None,
    ) -> list[list[Hit]] | list[Hit]:
        """Top-k chunks by MaxSim for one query ([n, dim] array) or a list of queries.
        plans: each query's QueryPlan, made by query_plans with this index's codec and `params`.
        snapshot: the commit to search, one this index gave (`snapshot`); default the current one."""
        single = isinstance(queries, np.ndarray) and queries.ndim == 2
        batch = [queries] if single else list(queries)
        if k < 1:
            raise ValueError("k must be at least 1")
        filter = None if filter is None else validate(filter)
        snap = snapshot or self._snapshot
        params = params or SearchParams.for_k(k, snap.manifest.nbits)
        allowed = self._allowed(snap, filter)
        results = [self._search_one(snap, q, k, allowed, exhaustive, params, None if plans is None else plans[i])
                   for i, q in enumerate(batch)]
        return results[0] if single else results

    def query_plans(self, queries: Sequence[np.ndarray], params: SearchParams) -> list[QueryPlan] | None:
        """The QueryPlan of each query under this snapshot's codec (None: no codec yet)."""
        codec = self._snapshot.codec
        if codec is None:
            return None
        return [QueryPlan(codec, np.ascontiguousarray(self._checked(q)), params) for q in queries]

    def _checked(self, query: np.ndarray) -> np.ndarray:
        query = np.asarray(query, dtype=np.float32)
        if query.ndim != 2 or query.shape[1] != self.dim or len(query) == 0:
            raise ValueError(f"a query must be a non-empty [n_tokens, {self.dim}] array, got shape {query.shape}")
        return query

    def _allowed(self, snap: Snapshot, filter_: Filter | None) -> list[np.ndarray | None]:
        if filter_ is None:
            return snap.live
        masks = []
        for seg, live in zip(snap.segments, snap.live):
            mask = evaluate(filter_, seg.metadata_table)
            masks.append(mask if live is None else mask & live)
        return masks

    def _search_one(self, snap: Snapshot, query: np.ndarray, k: int, allowed, exhaustive: bool,
                    params: SearchParams, plan: QueryPlan | None = None) -> list[Hit]:
        query = self._checked(query)
        if snap.codec is None:
            return []
        q = np.ascontiguousarray(query)
        if not exhaustive:
            plan = plan or QueryPlan(snap.codec, q, params)
            return self._hits(snap, search_segments(snap.segments, snap.codec, q, plan, allowed, k, params), k)
        found: list[tuple[float, int, int]] = []
        for s, (seg, mask) in enumerate(zip(snap.segments, allowed)):
            docs, scores = exhaustive_segment(seg, snap.codec, q, mask, k)
            found.extend((float(sc), s, int(d)) for d, sc in zip(docs, scores))
        return self._hits(snap, found, k)

    def search_dense(self, queries: np.ndarray, k: int = 10, filter: Filter | None = None,
                     snapshot: Snapshot | None = None) -> list[list[Hit]]:
        """Top-k chunks by the inner product of their dense vector with each query's ([n, dense
        dim] unit vectors, from the encoder the slot names), exhaustive over the allowed chunks."""
        if k < 1:
            raise ValueError("k must be at least 1")
        snap = snapshot or self._snapshot
        slot = snap.manifest.dense_slot
        if slot is None:
            raise ValueError("this index has no dense vectors (fill them: lfm2-search add-dense)")
        queries = np.asarray(queries, dtype=np.float32)
        if queries.ndim != 2 or queries.shape[1] != slot.dim:
            raise ValueError(f"dense queries must be [n, {slot.dim}], got {queries.shape}")
        filter = None if filter is None else validate(filter)
        found: list[list[tuple[float, int, int]]] = [[] for _ in queries]
        for s, (seg, mask) in enumerate(zip(snap.segments, self._allowed(snap, filter))):
            if seg.dense is None or seg.n_docs == 0 or (mask is not None and not mask.any()):
                continue
            scores, rows = seg.dense_searcher.search(queries, k, mask)
            for q, (row_scores, row_ids) in enumerate(zip(scores, rows)):
                found[q].extend((float(sc), s, int(r)) for r, sc in zip(row_ids, row_scores) if r >= 0)
        return [self._hits(snap, f, k) for f in found]

    def search_lexical(self, queries: Sequence[str | LexicalQuery], k: int = 10, filter: Filter | None = None,
                       collections: Sequence[TermStatistics] | None = None,
                       snapshot: Snapshot | None = None) -> list[list[Hit]]:
        """Top-k chunks by BM25 for each query (the lexical index of the same snapshot). A query
        text is analysed in its language, or the collection's main ones (analysis.py).

        collections: per query, the term statistics of a larger collection this index is part of
        (a sharded index's: the sum of every shard's `lexical_statistics`), so that its scores
        are the whole collection's; its queries then come resolved (LexicalQuery), by that
        collection's languages. snapshot: as in search."""
        if k < 1:
            raise ValueError("k must be at least 1")
        filter = None if filter is None else validate(filter)
        snap = snapshot or self._snapshot
        allowed = self._allowed(snap, filter)
        results = []
        for n, query in enumerate(queries):
            query = self.resolve_query(query, snap)
            collection = self._lexical_statistics(snap, query) if collections is None else collections[n]
            if collection is not None and not isinstance(collection, TermStatistics):
                raise TypeError("collections must hold TermStatistics (index/lexical.py)")
            found: list[tuple[float, int, int]] = []
            for s, (seg, mask) in enumerate(zip(snap.segments, allowed)):
                if mask is not None and not mask.any():
                    continue
                rows, scores = seg.lexical.search([query], k, mask, collection)[0]
                found.extend((float(sc), s, int(r)) for r, sc in zip(rows, scores))
            results.append(self._hits(snap, found, k))
        return results

    def language_docs(self, snapshot: Snapshot | None = None) -> dict[str, int]:
        """Chunks per language (`lang`; "" where none is known), deleted ones included until a
        merge drops them (as BM25's statistics count them)."""
        return dict(sum((Counter(seg.lexical.language_docs()) for seg in (snapshot or self._snapshot).segments),
                        Counter()))

    def resolve_query(self, query: str | LexicalQuery, snapshot: Snapshot | None = None) -> LexicalQuery:
        """A query text with the languages BM25 analyses it in (analysis.query_languages)."""
        if isinstance(query, LexicalQuery):
            return query
        return LexicalQuery(query, query_languages(query, self.language_docs(snapshot)))

    def lexical_statistics(self, query: str | LexicalQuery, snapshot: Snapshot | None = None) -> TermStatistics:
        """The BM25 statistics of the query's terms in this snapshot (by chunk language)."""
        snap = snapshot or self._snapshot
        return self._lexical_statistics(snap, self.resolve_query(query, snap), always=True)

    @staticmethod
    def _lexical_statistics(snap: Snapshot, query: LexicalQuery, always: bool = False) -> TermStatistics | None:
        """The sum of every segment's statistics, so that BM25 scores do not depend on how the
        index happens to be split (Lucene aggregates term statistics across segments the same
        way; deleted texts count until a merge drops them, as there)."""
        if len(snap.segments) < 2 and not always:
            return None  # one segment's own statistics are the collection's
        return TermStatistics.total(seg.lexical.statistics(query) for seg in snap.segments)

    @staticmethod
    def _hits(snap: Snapshot, found: list[tuple[float, int, int]], k: int) -> list[Hit]:
        """The best k of (score, segment, local chunk) as hits with their stored payload."""
        found.sort(key=lambda t: -t[0])
        found = found[:k]
        docs: dict[tuple[int, int], dict[str, Any]] = {}
        for s in {s for _, s, _ in found}:  # one read per segment, not per hit
            locals_ = [local for _, seg, local in found if seg == s]
            docs.update(((s, local), doc) for local, doc in zip(locals_, snap.segments[s].chunks(locals_)))
        return [Hit(docs[s, local]["id"], score, docs[s, local]["text"], docs[s, local]["metadata"])
                for score, s, local in found]

    # ------------------------------------------------------------------ writing
    def writer(self, expected_tokens: int | None = None, timeout: float = 0.0,
               settle: Callable[[Manifest], bool] | None = None) -> "IndexWriter":
        """The single writer (raises IndexLockedError if another is active after `timeout` s).
        settle: see IndexWriter (commits in two phases, for the shards of a sharded index).

        expected_tokens: for a first build streamed in chunks, the total number of tokens, so
        the codec gets as many centroids as the whole collection calls for (it is trained on
        the first ~1M tokens).
        """
        def open_latest() -> Snapshot:
            self.refresh()
            return self._snapshot

        return IndexWriter(self.path, open_latest, expected_tokens, timeout, settle)

    def add(self, ids, vectors, texts=None, metadata=None) -> int:
        """Add chunks in one commit; returns the commit number."""
        with self.writer() as w:
            w.add(ids, vectors, texts, metadata)
        return self.commit

    def upsert(self, ids, vectors, texts=None, metadata=None) -> int:
        with self.writer() as w:
            w.upsert(ids, vectors, texts, metadata)
        return self.commit

    def delete(self, ids: Sequence[str]) -> int:
        """Delete chunks by id in one commit; returns how many existed."""
        with self.writer() as w:
            return w.delete(ids)

    def merge_segments(self, max_segments: int = MAX_SEGMENTS, timeout: float = 0.0) -> int:
        """Tiered merging, as Lucene's: while the index has more than `max_segments` segments,
        the smallest (up to MERGE_FACTOR, at most MAX_SEGMENT_CHUNKS chunks together) are
        copied into one (codes as they are, deleted chunks dropped) by a commit.
        Keeps open files and per-query work bounded however many small
        writes came in. Returns the segments merged away (0: nothing to do)."""
        chosen = merge_candidates(self._snapshot.manifest.segments, max_segments)
        if not chosen:
            return 0
        with self.writer(timeout=timeout) as w:
            chosen = merge_candidates(w.base.manifest.segments, max_segments)  # as of the lock
            if chosen:
                w.merge(chosen)
        return len(chosen)

    def optimize(
        self, reencode: Callable[[list[str]], list[np.ndarray]] | None = None, nbits: int | None = None,
        reencode_dense: Callable[[list[str]], np.ndarray] | None = None, analysis: Analysis | None = None,
    ) -> None:
        """Retrain the codec on all live chunks and rewrite them into one segment.

        Deleted chunks are dropped for good. With `reencode` (texts -> token vectors, e.g.
        an encoder's encode_documents) vectors come fresh from the model; without it they
        are the decompressed stored vectors, so their compression error is compounded.
        reencode_dense: the same for the dense slot (without it dense vectors are copied).
        analysis: how BM25 reads the rewritten chunks (default: the index's own; an index made
        before analysis existed gets today's default).
        """
        with self.writer() as w:
            w.rebuild(reencode, nbits, reencode_dense, analysis)

    def reanalyze(self, analysis: Analysis, timeout: float = 0.0) -> int:
        """BM25 of every chunk made anew with `analysis`, which new chunks then get too, in one
        commit; token and dense vectors are copied as they are. Returns the chunks analysed."""
        with self.writer(timeout=timeout) as w:
            return w.reanalyze(analysis)

    def fill_dense(self, slot: DenseSlot, embed: Callable[[list[str]], np.ndarray], timeout: float = 0.0) -> int:
        """Give every chunk a dense vector, `embed(texts)`, and the index the dense slot, in one
        commit (an index that has a slot gets it replaced). Returns the chunks embedded."""
        with self.writer(timeout=timeout) as w:
            return w.fill_dense(slot, embed)
