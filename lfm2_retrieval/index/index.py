"""The multi-vector index: a folder of immutable segments, changed only by atomic commits.

    index = MultiVectorIndex.create("indexes/docs", dim=128, nbits=2)
    with index.writer() as w:                  # one writer at a time (a file lock)
        w.add(ids, vectors, texts, metadata)   # vectors: one [n_tokens, dim] array per document
        w.delete(["old-id"])
    # leaving the block commits atomically; an exception rolls everything back
    hits = index.search(query_vectors, k=10, filter={"lang": "en"})

Readers never block and never see a half-written commit: `manifest.json` names the files of
one complete snapshot and is replaced atomically. `refresh()` moves a reader to the newest one.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .codec import ResidualCodec, default_num_centroids
from .filters import Filter, evaluate, validate
from .integrity import (CheckReport, IndexDamagedError, Problem, check_segment_fully, crc32_of, folder_checksums,
                        read_segment_info, segment_sizes_problem, segment_structure_problem)
from .search import QueryPlan, SearchParams, exhaustive_segment, search_segment
from .segment import DocumentBatch, Segment, SegmentWriter
from .storage import WriterLock, load_npy, write_json_atomic

# 2: inverted-file lists Elias-Fano coded (segment.py). Format-1 segments read unchanged; a
# commit marks the index 2, so an older version refuses it clearly instead of failing on files.
FORMAT_VERSION = 2
READABLE_FORMATS = (1, 2)
MANIFEST = "manifest.json"
# Tiered merging: past MAX_SEGMENTS segments, the MERGE_FACTOR smallest become one.
MAX_SEGMENTS = 10
MERGE_FACTOR = 8
# Tokens buffered to train the codec when an empty index receives its first documents.
CODEC_TRAINING_TOKENS = 1 << 20
MAX_CODEC_SAMPLE = 1 << 21


def _crash_point(name: str) -> None:
    """Test hook: die like `kill -9` here when LFM2_SEARCH_CRASH_AT names this point."""
    if os.environ.get("LFM2_SEARCH_CRASH_AT") == name:
        os._exit(137)


class IndexFolderError(RuntimeError):
    """Problems with an index folder (missing, wrong format, incompatible vectors)."""


@dataclass
class Hit:
    id: str
    score: float
    text: str
    metadata: dict[str, Any]


@dataclass
class _Snapshot:
    """Everything a search needs, frozen at one commit."""

    manifest: dict[str, Any]
    codec: ResidualCodec | None
    segments: list[Segment]
    live: list[np.ndarray | None]  # per segment: False where deleted (None: nothing deleted)

    @property
    def commit(self) -> int:
        return self.manifest["commit"]


def _empty_manifest(dim: int, nbits: int, model_fingerprint: str | None, num_centroids: int | None,
                    model_source: str | None) -> dict:
    return {"format_version": FORMAT_VERSION, "commit": 0, "dim": dim, "nbits": nbits,
            "model_fingerprint": model_fingerprint, "model_source": model_source,
            "num_centroids": num_centroids, "codec": None,
            "segments": [], "tombstones": None, "next_internal_id": 0, "next_file": 1,
            "counts": {"documents": 0, "tokens": 0, "deleted": 0}, "updated_at": time.time()}


class MultiVectorIndex:
    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        if not (self.path / MANIFEST).exists():
            raise IndexFolderError(f"no index at {self.path} (no {MANIFEST}); create one first")
        self._segment_cache: dict[str, Segment] = {}
        self._codec_cache: dict[str, ResidualCodec] = {}
        self._snapshot = self._load_snapshot()

    # ------------------------------------------------------------------ opening
    @classmethod
    def create(cls, path: str | os.PathLike, dim: int, nbits: int = 4, model_fingerprint: str | None = None,
               num_centroids: int | None = None, exist_ok: bool = False,
               model_source: str | None = None) -> "MultiVectorIndex":
        """A new empty index folder.

        model_fingerprint: the encoder's fingerprint; vectors of another model are refused.
        model_source: where that model comes from (a folder or hub id), so tools that open
        the index can load the same model without being told.
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
        write_json_atomic(path / MANIFEST, _empty_manifest(dim, nbits, model_fingerprint, num_centroids, model_source))
        return cls(path)

    def check_compatible(self, dim: int, model_fingerprint: str | None = None) -> None:
        m = self.manifest
        if m["dim"] != dim:
            raise IndexFolderError(f"index {self.path} holds {m['dim']}-d vectors, not {dim}-d")
        if model_fingerprint and m["model_fingerprint"] and m["model_fingerprint"] != model_fingerprint:
            raise IndexFolderError(
                f"index {self.path} was built with model {m['model_fingerprint']}, not {model_fingerprint}; "
                "vectors of different models cannot be mixed (use another index, or rebuild)"
            )

    def _load_snapshot(self) -> _Snapshot:
        # A writer may delete the files of an older commit between our reading the manifest
        # and opening them; the manifest then names newer files, so read it again.
        for attempt in range(10):
            manifest = _read_manifest(self.path)
            try:
                return self._open_snapshot(manifest)
            except FileNotFoundError:
                time.sleep(0.01 * (attempt + 1))
        raise IndexFolderError(f"could not open a consistent snapshot of {self.path}")

    def _open_snapshot(self, manifest: dict[str, Any]) -> _Snapshot:
        if manifest.get("format_version") not in READABLE_FORMATS:
            raise IndexFolderError(f"index format {manifest.get('format_version')} is not supported "
                                   f"(this version reads formats {', '.join(map(str, READABLE_FORMATS))})")
        codec = None
        if manifest["codec"]:
            codec = self._codec_cache.get(manifest["codec"])
            if codec is None:
                codec = open_codec(self.path, manifest)
                self._codec_cache = {manifest["codec"]: codec}
        segments = []
        for info in manifest["segments"]:
            seg = self._segment_cache.get(info["name"]) or open_segment(self.path, info, codec)
            segments.append(seg)
        self._segment_cache = {s.name: s for s in segments}
        tombstones = np.empty(0, np.int64)
        if manifest["tombstones"]:
            try:
                tombstones = load_npy(self.path / manifest["tombstones"])
            except FileNotFoundError:
                raise
            except Exception as exc:  # noqa: BLE001 - deletions that do not load are damage
                raise IndexDamagedError(self.path, manifest["tombstones"], f"does not load ({type(exc).__name__})") from None
        live = [None if len(tombstones) == 0 else ~np.isin(s.internal_ids, tombstones) for s in segments]
        return _Snapshot(manifest, codec, segments, live)

    def refresh(self) -> bool:
        """Move to the newest commit; True if there was one."""
        if _read_manifest(self.path)["commit"] == self._snapshot.commit:
            return False
        self._snapshot = self._load_snapshot()
        return True

    # ------------------------------------------------------------------ facts
    @property
    def manifest(self) -> dict[str, Any]:
        return self._snapshot.manifest

    @property
    def commit(self) -> int:
        return self._snapshot.commit

    @property
    def dim(self) -> int:
        return self.manifest["dim"]

    def __len__(self) -> int:
        return self.manifest["counts"]["documents"]

    def stats(self) -> dict[str, Any]:
        snap = self._snapshot
        disk = sum(f.stat().st_size for f in self.path.rglob("*") if f.is_file())
        return {**snap.manifest["counts"], "commit": snap.commit, "segments": len(snap.segments),
                "dim": self.dim, "nbits": snap.manifest["nbits"],
                "centroids": snap.codec.num_centroids if snap.codec else 0,
                "model_fingerprint": snap.manifest["model_fingerprint"], "bytes_on_disk": disk}

    # ------------------------------------------------------------------ reading documents
    def _locate(self, snap: _Snapshot) -> dict[str, tuple[int, int]]:
        where = {}
        for s, (seg, live) in enumerate(zip(snap.segments, snap.live)):
            for local, ext in enumerate(seg.external_ids):
                if live is None or live[local]:
                    where[ext] = (s, local)
        return where

    def get(self, ids: Sequence[str]) -> list[dict[str, Any] | None]:
        """Stored id, text and metadata of each id (None where absent)."""
        snap = self._snapshot
        where = self._locate(snap)
        out: list[dict[str, Any] | None] = []
        for doc_id in ids:
            loc = where.get(doc_id)
            out.append(None if loc is None else snap.segments[loc[0]].documents([loc[1]])[0])
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
        """(id, {key: value}) of every live document (matching `filter`), reading only metadata."""
        if filter is not None:
            validate(filter)
        snap = self._snapshot
        for seg, mask in zip(snap.segments, self._allowed(snap, filter)):
            table = seg.metadata_table
            columns = [table.column(k).to_pylist() if k in table.column_names else [None] * seg.n_docs
                       for k in keys]
            local = range(seg.n_docs) if mask is None else np.flatnonzero(mask).tolist()
            ids = seg.external_ids
            for i in local:
                yield ids[i], {k: col[i] for k, col in zip(keys, columns)}

    def ids_where(self, filter: Filter) -> list[str]:
        """Ids of the live documents whose metadata matches `filter`."""
        return [doc_id for doc_id, _ in self.scan_metadata([], filter)]

    def iter_documents(self, offset: int = 0, limit: int | None = None) -> Iterable[dict[str, Any]]:
        """Live documents in storage order (id, text, metadata)."""
        snap, seen = self._snapshot, 0
        for seg, live in zip(snap.segments, snap.live):
            local = np.arange(seg.n_docs) if live is None else np.flatnonzero(live)
            for start in range(0, len(local), 1024):
                for doc in seg.documents(local[start:start + 1024]):
                    if seen >= offset:
                        yield doc
                    seen += 1
                    if limit is not None and seen >= offset + limit:
                        return

    # ------------------------------------------------------------------ search
    def search(self, queries: np.ndarray | Sequence[np.ndarray], k: int = 10, filter: Filter | None = None,
               exhaustive: bool = False, params: SearchParams | None = None) -> list[list[Hit]] | list[Hit]:
        """Top-k documents by MaxSim for one query ([n, dim] array) or a list of queries."""
        single = isinstance(queries, np.ndarray) and queries.ndim == 2
        batch = [queries] if single else list(queries)
        if k < 1:
            raise ValueError("k must be at least 1")
        if filter is not None:
            validate(filter)
        snap = self._snapshot
        params = params or SearchParams.for_k(k, snap.manifest["nbits"])
        allowed = self._allowed(snap, filter)
        results = [self._search_one(snap, q, k, allowed, exhaustive, params) for q in batch]
        return results[0] if single else results

    def _allowed(self, snap: _Snapshot, filter_: Filter | None) -> list[np.ndarray | None]:
        if filter_ is None:
            return snap.live
        masks = []
        for seg, live in zip(snap.segments, snap.live):
            mask = evaluate(filter_, seg.metadata_table)
            masks.append(mask if live is None else mask & live)
        return masks

    def _search_one(self, snap: _Snapshot, query: np.ndarray, k: int, allowed, exhaustive: bool,
                    params: SearchParams) -> list[Hit]:
        query = np.asarray(query, dtype=np.float32)
        if query.ndim != 2 or query.shape[1] != self.dim or len(query) == 0:
            raise ValueError(f"a query must be a non-empty [n_tokens, {self.dim}] array, got shape {query.shape}")
        if snap.codec is None:
            return []
        q = np.ascontiguousarray(query)
        plan = None if exhaustive else QueryPlan(snap.codec, q, params)
        found: list[tuple[float, int, int]] = []
        for s, (seg, mask) in enumerate(zip(snap.segments, allowed)):
            if exhaustive:
                docs, scores = exhaustive_segment(seg, snap.codec, q, mask, k)
            else:
                docs, scores = search_segment(seg, snap.codec, q, plan, mask, k, params)
            found.extend((float(sc), s, int(d)) for d, sc in zip(docs, scores))
        return self._hits(snap, found, k)

    def search_lexical(self, queries: Sequence[str], k: int = 10, filter: Filter | None = None) -> list[list[Hit]]:
        """Top-k documents by BM25 for each query text (the lexical index of the same snapshot)."""
        if k < 1:
            raise ValueError("k must be at least 1")
        if filter is not None:
            validate(filter)
        snap = self._snapshot
        allowed = self._allowed(snap, filter)
        results = []
        for query in queries:
            collection = self._lexical_statistics(snap, query)
            found: list[tuple[float, int, int]] = []
            for s, (seg, mask) in enumerate(zip(snap.segments, allowed)):
                if mask is not None and not mask.any():
                    continue
                rows, scores = seg.lexical.search([query], k, mask, collection)[0]
                found.extend((float(sc), s, int(r)) for r, sc in zip(rows, scores))
            results.append(self._hits(snap, found, k))
        return results

    @staticmethod
    def _lexical_statistics(snap: _Snapshot, query: str) -> tuple[int, dict[str, int]] | None:
        """(texts, {token: document frequency}) over every segment, so that BM25 scores do not
        depend on how the index happens to be split (Lucene aggregates term statistics across
        segments the same way; deleted texts count until a merge drops them, as there)."""
        if len(snap.segments) < 2:
            return None  # one segment's own statistics are the collection's
        from ..lexical import tokenize

        tokens = list(dict.fromkeys(tokenize(query)))
        df = dict.fromkeys(tokens, 0)
        n_docs = 0
        for seg in snap.segments:
            lexical = seg.lexical
            n_docs += lexical.size
            for t, n in zip(tokens, lexical.document_frequencies(tokens)):
                df[t] += int(n)
        return n_docs, df

    @staticmethod
    def _hits(snap: _Snapshot, found: list[tuple[float, int, int]], k: int) -> list[Hit]:
        """The best k of (score, segment, local document) as hits with their stored payload."""
        found.sort(key=lambda t: -t[0])
        found = found[:k]
        docs: dict[tuple[int, int], dict[str, Any]] = {}
        for s in {s for _, s, _ in found}:  # one read per segment, not per hit
            locals_ = [local for _, seg, local in found if seg == s]
            docs.update(((s, local), doc) for local, doc in zip(locals_, snap.segments[s].documents(locals_)))
        return [Hit(docs[s, local]["id"], score, docs[s, local]["text"], docs[s, local]["metadata"])
                for score, s, local in found]

    # ------------------------------------------------------------------ writing
    def writer(self, expected_tokens: int | None = None, timeout: float = 0.0) -> "IndexWriter":
        """The single writer (raises IndexLockedError if another is active after `timeout` s).

        expected_tokens: for a first build streamed in chunks, the total number of tokens, so
        the codec gets as many centroids as the whole collection calls for (it is trained on
        the first ~1M tokens).
        """
        return IndexWriter(self, expected_tokens, timeout)

    def add(self, ids, vectors, texts=None, metadata=None) -> int:
        """Add documents in one commit; returns the commit number."""
        with self.writer() as w:
            w.add(ids, vectors, texts, metadata)
        return self.commit

    def upsert(self, ids, vectors, texts=None, metadata=None) -> int:
        with self.writer() as w:
            w.upsert(ids, vectors, texts, metadata)
        return self.commit

    def delete(self, ids: Sequence[str]) -> int:
        """Delete documents by id in one commit; returns how many existed."""
        with self.writer() as w:
            return w.delete(ids)

    def merge_segments(self, max_segments: int = MAX_SEGMENTS, timeout: float = 0.0) -> int:
        """Tiered merging, as Lucene's: while the index has more than `max_segments` segments,
        the MERGE_FACTOR smallest are copied into one (codes as they are, deleted documents
        dropped) by a commit. Keeps open files and per-query work bounded however many small
        writes came in. Returns the segments merged away (0: nothing to do)."""
        chosen = merge_candidates(self._snapshot.manifest["segments"], max_segments)
        if not chosen:
            return 0
        with self.writer(timeout=timeout) as w:
            chosen = merge_candidates(w.base.manifest["segments"], max_segments)  # as of the lock
            if chosen:
                w.merge(chosen)
        return len(chosen)

    def optimize(self, reencode: Callable[[list[str]], list[np.ndarray]] | None = None, nbits: int | None = None) -> None:
        """Retrain the codec on all live documents and rewrite them into one segment.

        Deleted documents are dropped for good. With `reencode` (texts -> token vectors, e.g.
        an encoder's encode_documents) vectors come fresh from the model; without it they
        are the decompressed stored vectors, so their compression error is compounded.
        """
        with self.writer() as w:
            w.rebuild(reencode, nbits)


class IndexWriter:
    """The only way an index changes. Use as a context manager; nothing is visible until commit."""

    def __init__(self, index: MultiVectorIndex, expected_tokens: int | None = None, timeout: float = 0.0) -> None:
        self.index = index
        self.expected_tokens = expected_tokens or 0
        self.lock = WriterLock(index.path)
        self.lock.acquire(timeout)
        try:
            index.refresh()
            # Leftovers of a writer that died mid-commit are unreferenced: remove them first.
            _collect_garbage(index.path, index.manifest)
            self.base = index._snapshot
            self.manifest = dict(self.base.manifest)
            self.manifest["counts"] = dict(self.base.manifest["counts"])
            self.codec = self.base.codec
            self._where: dict[str, int] | None = None  # external id -> internal id (live)
            self._deleted: set[int] = set()
            self._tokens: dict[int, int] | None = None  # internal id -> token count, built on a first delete
            self._staged_tokens: dict[int, int] = {}  # the same for documents added by this writer
            self._merged: set[str] = set()  # segments a merge replaces
            self._new_segments: list[dict[str, Any]] = []
            self._seg_writer: SegmentWriter | None = None
            self._pending: list[DocumentBatch] = []  # buffered until a codec exists
            self._pending_ids: list[np.ndarray] = []
            self._replace_all = False
            self.closed = False
        except BaseException:
            self.lock.release()
            raise

    def __enter__(self) -> "IndexWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.abort()

    # ------------------------------------------------------------------ id bookkeeping
    def _live_ids(self) -> dict[str, int]:
        if self._where is None:
            where: dict[str, int] = {}
            for seg, live in zip(self.base.segments, self.base.live):
                for local, (ext, internal) in enumerate(zip(seg.external_ids, seg.internal_ids.tolist())):
                    if live is None or live[local]:
                        where[ext] = internal
            self._where = where
        return self._where

    def _next_internal_ids(self, n: int) -> np.ndarray:
        start = self.manifest["next_internal_id"]
        self.manifest["next_internal_id"] = start + n
        return np.arange(start, start + n, dtype=np.int64)

    def _next_name(self, prefix: str) -> str:
        while True:
            n = self.manifest["next_file"]
            self.manifest["next_file"] = n + 1
            name = f"{prefix}-{n:06d}"
            if not any((d / f).exists() for d in (self.index.path, self.index.path / "segments")
                       for f in (name, name + ".npy")):
                return name

    # ------------------------------------------------------------------ changes
    def add(self, ids: Sequence[str], vectors: Sequence[np.ndarray], texts: Sequence[str] | None = None,
            metadata: Sequence[dict[str, Any]] | None = None, *, replace: bool = False) -> None:
        """Stage new documents; ids must be new unless `replace` (upsert)."""
        self._check_open()
        ids = [str(i) for i in ids]
        batch = DocumentBatch(ids, [np.asarray(v, dtype=np.float32) for v in vectors],
                              list(texts) if texts is not None else [""] * len(ids),
                              [dict(m or {}) for m in metadata] if metadata is not None else [{} for _ in ids])
        self._validate(batch)
        where = self._live_ids()
        existing = [i for i in ids if i in where]
        if existing and not replace:
            raise ValueError(f"{len(existing)} ids already exist (e.g. {existing[0]!r}); use upsert to replace them")
        for doc_id in existing:
            self._forget(where.pop(doc_id))
        internal = self._next_internal_ids(len(ids))
        where.update(zip(ids, internal.tolist()))
        self._staged_tokens.update(zip(internal.tolist(), (len(v) for v in batch.vectors)))
        self.manifest["counts"]["documents"] += len(ids) - len(existing)
        self.manifest["counts"]["deleted"] += len(existing)
        self.manifest["counts"]["tokens"] += sum(len(v) for v in batch.vectors)
        self._stage(batch, internal)

    def _forget(self, internal: int) -> None:
        """Stage the deletion of a live document, its tokens out of the counts."""
        if self._tokens is None:
            self._tokens = {}
            for seg in self.base.segments:
                lengths = np.diff(np.asarray(seg.doc_offsets, dtype=np.int64))
                self._tokens.update(zip(seg.internal_ids.tolist(), lengths.tolist()))
        self._deleted.add(internal)
        tokens = self._staged_tokens.pop(internal, None)
        self.manifest["counts"]["tokens"] -= self._tokens.get(internal, 0) if tokens is None else tokens

    def upsert(self, ids, vectors, texts=None, metadata=None) -> None:
        self.add(ids, vectors, texts, metadata, replace=True)

    def delete(self, ids: Sequence[str]) -> int:
        """Stage deletions; returns how many of the ids existed (others are ignored)."""
        self._check_open()
        where = self._live_ids()
        n = 0
        for doc_id in dict.fromkeys(str(i) for i in ids):
            internal = where.pop(doc_id, None)
            if internal is not None:
                self._forget(internal)
                n += 1
        self.manifest["counts"]["documents"] -= n
        self.manifest["counts"]["deleted"] += n
        return n

    def _validate(self, batch: DocumentBatch) -> None:
        if len(set(batch.ids)) != len(batch.ids):
            raise ValueError("duplicate ids in one call")
        dim = self.manifest["dim"]
        for doc_id, v in zip(batch.ids, batch.vectors):
            if v.ndim != 2 or v.shape[1] != dim:
                raise ValueError(f"document {doc_id!r}: vectors must be [n_tokens, {dim}], got {v.shape}")
            if len(v) == 0:
                raise ValueError(f"document {doc_id!r} has no token vectors")
            if not np.isfinite(v).all():
                raise ValueError(f"document {doc_id!r} has NaN or infinite values")

    def _stage(self, batch: DocumentBatch, internal: np.ndarray) -> None:
        if self.codec is None:
            self._pending.append(batch)
            self._pending_ids.append(internal)
            if sum(len(v) for b in self._pending for v in b.vectors) >= CODEC_TRAINING_TOKENS:
                self._train_codec_from_pending()
            return
        if self._seg_writer is None:
            self._seg_writer = SegmentWriter(self.index.path, self._next_name("seg"), self.codec)
        self._seg_writer.add(batch, internal)

    def _train_codec_from_pending(self) -> None:
        vectors = np.concatenate([v for b in self._pending for v in b.vectors])
        n_tokens = max(len(vectors), self.manifest["counts"]["tokens"], self.expected_tokens)
        k = self.manifest.get("num_centroids") or default_num_centroids(n_tokens)
        if len(vectors) > MAX_CODEC_SAMPLE:
            vectors = vectors[np.random.default_rng(0).choice(len(vectors), MAX_CODEC_SAMPLE, replace=False)]
        self.codec = ResidualCodec.train(vectors, self.manifest["nbits"], num_centroids=k)
        name = self._next_name("codec")
        self.codec.save(self.index.path / f"{name}.tmp")
        self.manifest["codec_files"] = folder_checksums(self.index.path / f"{name}.tmp")
        os.replace(self.index.path / f"{name}.tmp", self.index.path / name)
        self.manifest["codec"] = name
        pending, pending_ids = self._pending, self._pending_ids
        self._pending, self._pending_ids = [], []
        for batch, internal in zip(pending, pending_ids):
            self._stage(batch, internal)

    def rebuild(self, reencode, nbits: int | None) -> None:
        """Stage a full rewrite: every live document into a fresh codec and one segment."""
        self._check_open()
        if self._new_segments or self._pending or self._seg_writer:
            raise RuntimeError("optimize must be the only change of its commit")
        snap = self.base
        # Reset to an empty index first, then stream documents back in: the new codec trains
        # on the first ~1M tokens and the rest go straight to the new segment.
        self._replace_all = True
        self.codec = None
        self.manifest.update(codec=None, nbits=nbits or self.manifest["nbits"], tombstones=None,
                             counts={"documents": 0, "tokens": 0, "deleted": 0})
        self._where, self._deleted = {}, set()
        self.expected_tokens = max(self.expected_tokens, snap.manifest["counts"]["tokens"])
        for seg, live in zip(snap.segments, snap.live):
            local = np.arange(seg.n_docs) if live is None else np.flatnonzero(live)
            for start in range(0, len(local), 4096):
                part = local[start:start + 4096]
                docs = seg.documents(part)
                texts = [d["text"] for d in docs]
                if reencode is not None:
                    vectors = reencode(texts)
                else:
                    positions, counts = seg.token_ranges(part)
                    flat = snap.codec.decompress(seg.codes[positions], seg.residuals[positions])
                    vectors = np.split(flat, np.cumsum(counts)[:-1])
                self.add([d["id"] for d in docs], vectors, texts, [d["metadata"] for d in docs])
        if self.codec is None and self._pending:
            self._train_codec_from_pending()

    def merge(self, names: Sequence[str]) -> int:
        """Stage a merge: the live documents of these segments copied, codes and residuals as
        they are (the same codec), into one new segment that replaces them. Returns the
        documents copied. Deleted documents are left behind for good."""
        self._check_open()
        if self._replace_all or self._seg_writer is not None or self._pending:
            raise RuntimeError("a merge must be the only change of its commit")
        chosen = [(seg, live) for seg, live in zip(self.base.segments, self.base.live) if seg.name in set(names)]
        if len(chosen) < 2 or self.codec is None:
            return 0
        writer = SegmentWriter(self.index.path, self._next_name("seg"), self.codec)
        copied = 0
        try:
            for seg, live in chosen:
                local = np.arange(seg.n_docs) if live is None else np.flatnonzero(live)
                for start in range(0, len(local), 4096):
                    part = local[start:start + 4096]
                    docs = seg.documents(part)
                    positions, counts = seg.token_ranges(part)
                    batch = DocumentBatch([d["id"] for d in docs], [np.empty((int(n), 0)) for n in counts],
                                          [d["text"] for d in docs], [d["metadata"] for d in docs])
                    writer.add_encoded(batch, seg.internal_ids[part], seg.codes[positions],
                                       seg.residuals[positions], counts.tolist())
                    copied += len(part)
            info = writer.finish()
        except BaseException:
            writer.abort()
            raise
        self._merged = {seg.name for seg, _ in chosen}
        self._new_segments.append({k: info[k] for k in ("name", "n_docs", "n_tokens", "checksum")})
        gone = sum(seg.n_docs for seg, _ in chosen) - copied
        self.manifest["counts"]["deleted"] = max(0, self.manifest["counts"]["deleted"] - gone)
        return copied

    @property
    def has_changes(self) -> bool:
        """Whether committing would change anything."""
        return bool(self._deleted or self._new_segments or self._seg_writer or self._pending or self._replace_all)

    # ------------------------------------------------------------------ commit
    def commit(self) -> None:
        """Publish staged changes atomically, then release the lock."""
        self._check_open()
        if not self.has_changes and self.base.commit > 0:
            self._close()  # nothing staged (e.g. deleting ids that do not exist): no new commit
            return
        try:
            if self._pending:
                self._train_codec_from_pending()
            if self._seg_writer is not None:
                info = self._seg_writer.finish()
                self._seg_writer = None
                self._new_segments.append({k: info[k] for k in ("name", "n_docs", "n_tokens", "checksum")})
                _crash_point("segment-written")
            old = [] if self._replace_all else [s for s in self.base.manifest["segments"]
                                                  if s["name"] not in self._merged]
            self.manifest["segments"] = old + self._new_segments
            if self._deleted and not self._replace_all:
                previous = (load_npy(self.index.path / self.base.manifest["tombstones"])
                            if self.base.manifest["tombstones"] else np.empty(0, np.int64))
                tombstones = np.union1d(previous, np.fromiter(self._deleted, np.int64))
                name = self._next_name("tombstones") + ".npy"
                tmp = self.index.path / f".{name}.tmp"
                with open(tmp, "wb") as f:
                    np.save(f, tombstones)
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, self.index.path / name)
                self.manifest["tombstones"] = name
                self.manifest["tombstones_checksum"] = crc32_of(self.index.path / name)
                _crash_point("tombstones-written")
            self.manifest["commit"] = self.base.commit + 1
            self.manifest["format_version"] = FORMAT_VERSION
            self.manifest["updated_at"] = time.time()
            _crash_point("before-manifest")
            write_json_atomic(self.index.path / MANIFEST, self.manifest)
            _crash_point("after-manifest")
            self.index.refresh()
            _collect_garbage(self.index.path, self.manifest)
        except BaseException:
            self.abort()
            raise
        self._close()

    def abort(self) -> None:
        """Drop staged changes; the index stays at its last commit."""
        if self.closed:
            return
        try:
            if self._seg_writer is not None:
                self._seg_writer.abort()
            _collect_garbage(self.index.path, self.base.manifest)
        finally:
            # Released whatever clean-up met (a full disk, no file handles left): a writer that
            # failed must never keep every later writer out until the process ends.
            self._close()

    def _close(self) -> None:
        self.closed = True
        self.lock.release()

    def _check_open(self) -> None:
        if self.closed:
            raise RuntimeError("this writer has already committed or aborted")


def merge_candidates(segments: Sequence[dict[str, Any]], max_segments: int | None = None) -> list[str]:
    """The segments a tiered merge takes now: the MERGE_FACTOR smallest (by documents), if there
    are more than `max_segments`."""
    max_segments = MAX_SEGMENTS if max_segments is None else max_segments
    if len(segments) <= max_segments:
        return []
    smallest = sorted(segments, key=lambda s: (s["n_docs"], s["name"]))[:max(2, MERGE_FACTOR)]
    return [s["name"] for s in smallest]


def check_index(path: str | Path, full: bool = False) -> CheckReport:
    """Every part of the index's current commit, checked: the cheap checks of opening, and with
    `full` every checksum, record, inverted-file list and BM25 index; then the counts."""
    path = Path(path)
    try:
        manifest = _read_manifest(path)
    except IndexDamagedError as exc:
        report = CheckReport(commit=-1, full=full)
        report.problems.append(Problem(exc.part, exc.problem))
        return report
    report = CheckReport(commit=manifest["commit"], full=full)
    codec = None
    if manifest["codec"]:
        try:
            codec = open_codec(path, manifest)
            bad = [rel for rel, (_, crc) in manifest.get("codec_files", {}).items()
                   if full and crc32_of(path / manifest["codec"] / rel) != crc]
            if bad:
                raise IndexDamagedError(path, f"{manifest['codec']}/{bad[0]}", "checksum mismatch")
            report.checked.append(manifest["codec"])
        except IndexDamagedError as exc:
            report.problems.append(Problem(exc.part, exc.problem))
    tombstones = np.empty(0, np.int64)
    if manifest["tombstones"]:
        try:
            crc = manifest.get("tombstones_checksum")
            if full and crc is not None and crc32_of(path / manifest["tombstones"]) != crc:
                raise ValueError("checksum mismatch")
            tombstones = load_npy(path / manifest["tombstones"])
            report.checked.append(manifest["tombstones"])
        except Exception as exc:  # noqa: BLE001 - unreadable deletions are damage
            report.problems.append(Problem(manifest["tombstones"], f"the deletions do not load ({exc})"))
    live_documents = 0
    for entry in manifest["segments"]:
        try:
            seg = open_segment(path, entry, codec)
        except (IndexDamagedError, FileNotFoundError) as exc:
            report.problems.append(Problem(getattr(exc, "part", f"segments/{entry['name']}"),
                                           getattr(exc, "problem", "missing")))
            continue
        problems = check_segment_fully(seg, seg.info) if full else []
        if problems:
            report.problems += problems
            continue
        report.checked.append(f"segments/{entry['name']}")
        live_documents += int(np.sum(~np.isin(seg.internal_ids, tombstones))) if len(tombstones) else seg.n_docs
    if not report.problems and live_documents != manifest["counts"]["documents"]:
        report.problems.append(Problem(MANIFEST, f"counts {manifest['counts']['documents']} documents, the segments "
                                                 f"hold {live_documents}"))
    return report


def repair_index(path: str | Path, report: CheckReport, timeout: float = 10.0) -> dict[str, Any]:
    """A new commit without what `report` found damaged: damaged segments are dropped (with a
    damaged codec or deletion list, every segment: their vectors or deletions cannot be trusted),
    counts are recomputed. What was dropped is returned, with the source files it held where they
    can still be read, so the next `lfm2-search index` run indexes them again."""
    path = Path(path)
    lock = WriterLock(path)
    lock.acquire(timeout)
    try:
        manifest = _read_manifest(path)
        if manifest["commit"] != report.commit:
            raise IndexFolderError(f"index {path} changed since it was checked (commit {report.commit} -> "
                                   f"{manifest['commit']}); run `lfm2-search check` again")
        damaged = set(report.damaged_segments)
        everything = any(not p.part.startswith("segments/") for p in report.problems)
        keep = [] if everything else [s for s in manifest["segments"] if s["name"] not in damaged]
        dropped = [s["name"] for s in manifest["segments"] if s not in keep]
        new = {**manifest, "segments": keep, "commit": manifest["commit"] + 1, "updated_at": time.time()}
        codec_ok = manifest["codec"] and not any(p.part.startswith(manifest["codec"]) for p in report.problems)
        if not codec_ok:
            new.update(codec=None, codec_files={})
        tombstones = np.empty(0, np.int64)
        if manifest["tombstones"] and not everything:
            tombstones = load_npy(path / manifest["tombstones"])
        elif manifest["tombstones"]:
            new.update(tombstones=None, tombstones_checksum=None)
        codec = open_codec(path, new) if new["codec"] else None
        documents = tokens = 0
        for entry in keep:
            seg = open_segment(path, entry, codec)
            live = ~np.isin(seg.internal_ids, tombstones) if len(tombstones) else np.ones(seg.n_docs, bool)
            documents += int(live.sum())
            tokens += int(np.diff(np.asarray(seg.doc_offsets, dtype=np.int64))[live].sum())
        new["counts"] = {**manifest["counts"], "documents": documents, "tokens": tokens}
        sources = _sources_of(path, dropped)
        write_json_atomic(path / MANIFEST, new)
        _collect_garbage(path, new)
    finally:
        lock.release()
    return {"commit": new["commit"], "dropped_segments": dropped, "documents": documents, "sources": sources}


def _sources_of(path: Path, segments: list[str]) -> list[str] | None:
    """The `source` files of documents in these segments (None where they cannot be read)."""
    found: set[str] = set()
    for name in segments:
        try:
            import pyarrow.parquet as pq

            for meta in pq.read_table(path / "segments" / name / "docs.parquet", columns=["metadata"]).column(0).to_pylist():
                if source := json.loads(meta or "{}").get("source"):
                    found.add(source)
        except Exception:  # noqa: BLE001 - a damaged table: the sources stay unknown
            return None
    return sorted(found)


def open_codec(path: Path, manifest: dict[str, Any]) -> ResidualCodec:
    """The commit's codec, its files' sizes checked against the manifest."""
    folder = path / manifest["codec"]
    for rel, (size, _) in manifest.get("codec_files", {}).items():
        if not (folder / rel).is_file() or (folder / rel).stat().st_size != size:
            raise IndexDamagedError(path, f"{manifest['codec']}/{rel}", "missing or not the size written")
    try:
        return ResidualCodec.load(folder)
    except FileNotFoundError:
        raise
    except Exception as exc:  # noqa: BLE001 - a codec that does not load is damaged
        raise IndexDamagedError(path, manifest["codec"], f"does not load ({type(exc).__name__})") from None


def open_segment(path: Path, entry: dict[str, Any], codec: ResidualCodec | None) -> Segment:
    """A segment, after the cheap checks: its segment.json against the manifest's checksum,
    every file's size, and the invariants the search kernels rely on."""
    folder = path / "segments" / entry["name"]
    where = f"segments/{entry['name']}"
    try:
        read_segment_info(folder, entry.get("checksum"))
        seg = Segment(folder)
    except FileNotFoundError:
        raise  # a writer removed an older commit's files: the caller reads the manifest again
    except Exception as exc:  # noqa: BLE001 - unreadable metadata is damage
        raise IndexDamagedError(path, where, f"does not open ({type(exc).__name__}: {str(exc)[:120]})") from None
    problem = segment_sizes_problem(folder, seg.info) or segment_structure_problem(
        seg, codec.num_centroids if codec else None)
    if problem:
        raise IndexDamagedError(path, problem.part, problem.problem)
    return seg


def _read_manifest(path: Path) -> dict[str, Any]:
    try:
        return json.loads((path / MANIFEST).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise IndexFolderError(f"no index at {path}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise IndexDamagedError(path, MANIFEST, f"not valid JSON ({type(exc).__name__})") from None


_MANAGED = re.compile(r"^(codec-\d+|tombstones-\d+\.npy|\..*\.tmp(-\d+)?|codec-\d+\.tmp)$")


def _collect_garbage(path: Path, manifest: dict[str, Any]) -> None:
    """Remove files of older commits and of crashed writers (called with the lock held).

    Readers that still use an older snapshot keep working: their files are open or mapped,
    and unlinking does not take the data away from them.
    """
    keep = {manifest["codec"], manifest["tombstones"]}
    for entry in path.iterdir():
        if entry.name in keep or not _MANAGED.match(entry.name):
            continue
        shutil.rmtree(entry, ignore_errors=True) if entry.is_dir() else entry.unlink(missing_ok=True)
    live_segments = {s["name"] for s in manifest["segments"]}
    segments_dir = path / "segments"
    if segments_dir.exists():
        for entry in segments_dir.iterdir():
            if entry.name not in live_segments:
                shutil.rmtree(entry, ignore_errors=True)
