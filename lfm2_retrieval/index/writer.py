"""The writer: the only way an index changes, one commit at a time.

    with index.writer() as w:                  # one writer at a time (a file lock)
        w.add(ids, vectors, texts, metadata)   # vectors: one [n_tokens, dim] array per chunk
        w.delete(["old-id"])
    # leaving the block commits atomically; an exception rolls everything back

A commit writes new files only (a segment, a codec, a deletion list), makes them durable, then
replaces manifest.json atomically: a reader sees the old commit or the new one, never a mix, and
a writer killed at any moment leaves the last commit intact (its files are collected later).

A commit can also be made in two phases, for changes that span several indexes (the shards of a
sharded index, shards/): `commit(publish=False)` writes everything, the new manifest included,
as manifest.next.json, and keeps the lock; `publish()` then renames it over manifest.json. A
prepared commit that was never published is dropped by the next writer, unless the caller's
`settle` says it was committed elsewhere (then it is published), as a two-phase commit's
coordinator decides.

The outcome of a commit is decided at one point, the rename of the manifest. A failure before it
(a full disk, no descriptors left, an I/O error) rolls the commit back and is raised; after it,
the commit has happened and is answered as done: moving the reader to it and collecting the old
commit's files are then best effort (the next refresh and the next writer do what is left), so
a caller is never told "failed" about a write that is committed, and clean-up never touches what
the committed manifest names.
"""

from __future__ import annotations

import copy
import logging
import os
import re
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .analysis import Analysis
from .codec import ResidualCodec, default_num_centroids
from .contract import Transaction
from .integrity import crc32_of, folder_checksums
from .manifest import (COMMITS_DIR, FORMAT_VERSION, KEEP_COMMIT_POINTS, MANIFEST, MANIFEST_NEXT, Counts, Manifest,
                       SegmentEntry, commit_points)
from .dense import DenseSlot, checked_dense
from .segment import ChunkBatch, ChunkMetadata, SegmentWriter
from .snapshot import Snapshot
from .storage import RenameDone, WriterLock, durable_rename, load_npy, publish_dir, save_npy

log = logging.getLogger("lfm2_search.index")

# Tiered merging: past MAX_SEGMENTS segments, the MERGE_FACTOR smallest become one (merge_candidates).
MAX_SEGMENTS = 10
MERGE_FACTOR = 8
# A segment is finished and a new one begun past this many chunks, even inside one commit: a
# segment's inverted file and BM25 index are built in memory when it is finished.
MAX_SEGMENT_CHUNKS = 100_000
# Tokens buffered to train the codec when an empty index receives its first chunks.
CODEC_TRAINING_TOKENS = 1 << 20
MAX_CODEC_SAMPLE = 1 << 21


def _crash_point(name: str) -> None:
    """Test hook: die like `kill -9` here when LFM2_SEARCH_CRASH_AT names this point."""
    if os.environ.get("LFM2_SEARCH_CRASH_AT") == name:
        os._exit(137)


class IndexWriter(Transaction):
    """The only way an index changes. Use as a context manager; nothing is visible until commit."""

    def __init__(self, path: Path, open_latest: Callable[[], Snapshot], expected_tokens: int | None = None,
                 timeout: float = 0.0, settle: Callable[[Manifest], bool] | None = None) -> None:
        """path: the index folder; open_latest: moves the index's reader to the newest commit
        and returns that snapshot (called once the lock is held, and after committing).
        settle: for a commit left prepared (two phases, unpublished) by a writer that died, whether
        it was committed after all (True: publish it; False or no `settle`: drop it)."""
        self.path, self._open_latest = path, open_latest
        self.expected_tokens = expected_tokens or 0
        self.lock = WriterLock(path)
        self.lock.acquire(timeout)
        try:
            settle_prepared(path, settle)
            self.base = open_latest()
            # Leftovers of a writer that died mid-commit are unreferenced: remove them first.
            collect_garbage(path, self.base.manifest)
            self.manifest = self.base.manifest.copy()  # the next commit's, changed as work is staged
            self.codec = self.base.codec
            self._where: dict[str, int] | None = None  # external id -> internal id (live)
            self._deleted: set[int] = set()
            self._tokens: dict[int, int] | None = None  # internal id -> token count, built on a first delete
            self._staged_tokens: dict[int, int] = {}  # the same for chunks added by this writer
            self._merged: set[str] = set()  # segments a merge replaces
            self._new_segments: list[SegmentEntry] = []
            self._seg_writer: SegmentWriter | None = None
            self._pending: list[ChunkBatch] = []  # buffered until a codec exists
            self._pending_ids: list[np.ndarray] = []
            self._replace_all = False
            self.prepared = False  # commit(publish=False) done, publish() not yet
            self.committed = False  # the manifest was published: this writer's commit happened
            self.closed = False
        except BaseException:
            self.lock.release()
            raise

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

    def contains(self, chunk_id: str) -> bool:
        """Whether a chunk of this id is live, as staged."""
        return chunk_id in self._live_ids()

    def _next_internal_ids(self, n: int) -> np.ndarray:
        start = self.manifest.next_internal_id
        self.manifest.next_internal_id = start + n
        return np.arange(start, start + n, dtype=np.int64)

    def _next_name(self, prefix: str) -> str:
        while True:
            n = self.manifest.next_file
            self.manifest.next_file = n + 1
            name = f"{prefix}-{n:06d}"
            if not any((d / f).exists() for d in (self.path, self.path / "segments")
                       for f in (name, name + ".npy")):
                return name

    # ------------------------------------------------------------------ changes
    def add(self, ids: Sequence[str], vectors: Sequence[np.ndarray], texts: Sequence[str] | None = None,
            metadata: Sequence[dict[str, Any]] | None = None, *, replace: bool = False,
            dense: np.ndarray | None = None) -> None:
        """Stage new chunks; ids must be new unless `replace` (upsert). dense: one vector per
        chunk, required exactly when the index has a dense slot."""
        self._check_open()
        batch = self._batch(ids, [np.asarray(v, dtype=np.float32) for v in vectors], texts, metadata)
        batch.dense = self._checked_dense(dense, batch.ids)
        self._validate(batch)
        self._stage(batch, self._register(batch.ids, [len(v) for v in batch.vectors], replace))

    def add_encoded(self, ids: Sequence[str], codes: np.ndarray, residuals: np.ndarray, lengths: Sequence[int],
                    texts: Sequence[str] | None = None, metadata: Sequence[dict[str, Any]] | None = None, *,
                    replace: bool = False, dense: np.ndarray | None = None) -> None:
        """Stage chunks compressed already by this index's codec (`codes`, `residuals`: their
        tokens back to back; `lengths`: tokens per chunk), e.g. by encoding workers that were
        shipped the codec, or copied from an index with the same codec (a shard split)."""
        self._check_open()
        if self.codec is None:
            raise ValueError("this index has no codec yet: add vectors first, or set one with use_codec")
        lengths = [int(n) for n in lengths]
        if any(n < 1 for n in lengths) or sum(lengths) != len(codes) or len(codes) != len(residuals):
            raise ValueError("codes and residuals must hold exactly the chunks' tokens, at least one each")
        if residuals.ndim != 2 or residuals.shape[1] != self.codec.dim * self.codec.nbits // 8:
            raise ValueError(f"residuals must be [n_tokens, {self.codec.dim * self.codec.nbits // 8}] bytes")
        if len(codes) and int(np.max(codes)) >= self.codec.num_centroids:
            raise ValueError("a code names no centroid of this codec")
        batch = self._batch(ids, [np.empty((n, 0), np.float32) for n in lengths], texts, metadata)
        batch.dense = self._checked_dense(dense, batch.ids)
        internal = self._register(batch.ids, lengths, replace)
        self._segment_writer().add_encoded(batch, internal, codes, residuals, lengths)
        self._roll_segment()

    def _checked_dense(self, dense: np.ndarray | None, ids: list[str]) -> np.ndarray | None:
        slot = self.manifest.dense_slot
        if slot is None:
            if dense is not None:
                raise ValueError("this index has no dense slot: create it with one (--dense) or fill it first "
                                 "(lfm2-search add-dense)")
            return None
        if dense is None:
            raise ValueError(f"this index keeps a dense vector per chunk ({slot.encoder}, {slot.dim}-d): "
                             "give one per chunk (dense=...)")
        return checked_dense(dense, len(ids), slot.dim, ids)

    @staticmethod
    def _batch(ids, vectors, texts, metadata) -> ChunkBatch:
        ids = [str(i) for i in ids]
        batch = ChunkBatch(ids, list(vectors), list(texts) if texts is not None else [""] * len(ids),
                           # a copy (the caller may change its dicts), except metadata that shares
                           # a part with other chunks: it is read-only by contract (segment.py)
                           [m if isinstance(m, ChunkMetadata) else dict(m or {}) for m in metadata]
                           if metadata is not None else [{} for _ in ids])
        if len(set(batch.ids)) != len(batch.ids):
            raise ValueError("duplicate ids in one call")
        return batch

    def _register(self, ids: list[str], lengths: list[int], replace: bool) -> np.ndarray:
        """Internal ids for new chunks, replacing live ones of the same id if `replace`."""
        where = self._live_ids()
        existing = [i for i in ids if i in where]
        if existing and not replace:
            raise ValueError(f"{len(existing)} ids already exist (e.g. {existing[0]!r}); use upsert to replace them")
        for doc_id in existing:
            self._forget(where.pop(doc_id))
        internal = self._next_internal_ids(len(ids))
        where.update(zip(ids, internal.tolist()))
        self._staged_tokens.update(zip(internal.tolist(), lengths))
        self.manifest.counts.chunks += len(ids) - len(existing)
        self.manifest.counts.deleted += len(existing)
        self.manifest.counts.tokens += sum(lengths)
        return internal

    def use_codec(self, codec: ResidualCodec) -> None:
        """Compress with `codec`, one shared with other indexes (the shards of a sharded index,
        whose scores must compare): an index without a codec takes it with this commit; one
        that has a codec accepts only the same."""
        self._check_open()
        if self.codec is not None:
            if not same_codec(self.codec, codec):
                raise ValueError(f"index {self.path} already has another codec")
            return
        if self.manifest.nbits != codec.nbits or self.manifest.dim != codec.dim:
            raise ValueError(f"the codec is {codec.dim}-d at {codec.nbits} bits; the index {self.manifest.dim}-d "
                             f"at {self.manifest.nbits}")
        self._publish_codec(codec)

    def set_user_data(self, data: dict[str, Any]) -> None:
        """Replace the commit's user data (Manifest.user_data), published with the next commit."""
        self._check_open()
        self.manifest.user_data = copy.deepcopy(dict(data))

    def _forget(self, internal: int) -> None:
        """Stage the deletion of a live chunk, its tokens out of the counts."""
        if self._tokens is None:
            self._tokens = {}
            for seg in self.base.segments:
                lengths = np.diff(np.asarray(seg.doc_offsets, dtype=np.int64))
                self._tokens.update(zip(seg.internal_ids.tolist(), lengths.tolist()))
        self._deleted.add(internal)
        tokens = self._staged_tokens.pop(internal, None)
        self.manifest.counts.tokens -= self._tokens.get(internal, 0) if tokens is None else tokens

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
        self.manifest.counts.chunks -= n
        self.manifest.counts.deleted += n
        return n

    def _validate(self, batch: ChunkBatch) -> None:
        dim = self.manifest.dim
        for doc_id, v in zip(batch.ids, batch.vectors):
            if v.ndim != 2 or v.shape[1] != dim:
                raise ValueError(f"chunk {doc_id!r}: vectors must be [n_tokens, {dim}], got {v.shape}")
            if len(v) == 0:
                raise ValueError(f"chunk {doc_id!r} has no token vectors")
            if not np.isfinite(v).all():
                raise ValueError(f"chunk {doc_id!r} has NaN or infinite values")

    def _stage(self, batch: ChunkBatch, internal: np.ndarray) -> None:
        if self.codec is None:
            self._pending.append(batch)
            self._pending_ids.append(internal)
            if sum(len(v) for b in self._pending for v in b.vectors) >= CODEC_TRAINING_TOKENS:
                self._train_codec_from_pending()
            return
        self._segment_writer().add(batch, internal)
        self._roll_segment()

    def _segment_writer(self) -> SegmentWriter:
        if self._seg_writer is None:
            self._seg_writer = SegmentWriter(self.path, self._next_name("seg"), self.codec, self.manifest.analysis)
        return self._seg_writer

    def _roll_segment(self) -> None:
        if self._seg_writer.n_docs >= MAX_SEGMENT_CHUNKS and not self._replace_all:  # optimize makes one
            self._new_segments.append(_entry(self._seg_writer.finish()))
            self._seg_writer = None

    def _train_codec_from_pending(self) -> None:
        vectors = np.concatenate([v for b in self._pending for v in b.vectors])
        n_tokens = max(len(vectors), self.manifest.counts.tokens, self.expected_tokens)
        k = self.manifest.num_centroids or default_num_centroids(n_tokens)
        if len(vectors) > MAX_CODEC_SAMPLE:
            vectors = vectors[np.random.default_rng(0).choice(len(vectors), MAX_CODEC_SAMPLE, replace=False)]
        self._publish_codec(ResidualCodec.train(vectors, self.manifest.nbits, num_centroids=k))

    def _publish_codec(self, codec: ResidualCodec) -> None:
        """`codec` becomes this commit's: saved and durable before a commit names it; chunks
        waiting for a codec are staged with it."""
        self.codec = codec
        name = self._next_name("codec")
        self.codec.save(self.path / f"{name}.tmp")
        self.manifest.codec_files = folder_checksums(self.path / f"{name}.tmp")
        publish_dir(self.path / f"{name}.tmp", self.path / name)
        self.manifest.codec = name
        pending, pending_ids = self._pending, self._pending_ids
        self._pending, self._pending_ids = [], []
        for batch, internal in zip(pending, pending_ids):
            self._stage(batch, internal)

    def rebuild(self, reencode, nbits: int | None, reencode_dense=None, analysis: Analysis | None = None) -> None:
        """Stage a full rewrite: every live chunk into a fresh codec and one segment. reencode
        (texts -> token vectors) and reencode_dense (texts -> dense vectors) make them anew;
        without them the stored ones are kept. analysis: BM25's, else the index's own (an index
        made before analysis existed gets the default)."""
        self._check_open()
        if self._new_segments or self._pending or self._seg_writer:
            raise RuntimeError("optimize must be the only change of its commit")
        keep = self.manifest.analysis if self.manifest.lexical else Analysis()
        self.manifest.lexical = (analysis or keep).to_json()
        snap = self.base
        # Reset to an empty index first, then stream chunks back in: the new codec trains
        # on the first ~1M tokens and the rest go straight to the new segment.
        self._replace_all = True
        self.codec = None
        self.manifest.codec, self.manifest.codec_files = None, {}
        self.manifest.nbits = nbits or self.manifest.nbits
        self.manifest.tombstones, self.manifest.tombstones_checksum = None, None
        self.manifest.counts = Counts()
        self._where, self._deleted = {}, set()
        self.expected_tokens = max(self.expected_tokens, snap.manifest.counts.tokens)
        for seg, live in zip(snap.segments, snap.live):
            local = np.arange(seg.n_docs) if live is None else np.flatnonzero(live)
            for start in range(0, len(local), 4096):
                part = local[start:start + 4096]
                docs = seg.chunks(part)
                texts = [d["text"] for d in docs]
                if reencode is not None:
                    vectors = reencode(texts)
                else:
                    positions, counts = seg.token_ranges(part)
                    flat = snap.codec.decompress(seg.codes[positions], seg.residuals[positions])
                    vectors = np.split(flat, np.cumsum(counts)[:-1])
                dense = None
                if self.manifest.dense_slot is not None:
                    dense = reencode_dense(texts) if reencode_dense is not None else np.asarray(seg.dense[part])
                self.add([d["id"] for d in docs], vectors, texts, [d["metadata"] for d in docs], dense=dense)
        if self.codec is None and self._pending:
            self._train_codec_from_pending()

    def merge(self, names: Sequence[str], allow_single: bool = False) -> int:
        """Stage a merge: the live chunks of these segments copied, codes and residuals as
        they are (the same codec), into one new segment that replaces them. Returns the
        chunks copied. Deleted chunks are left behind for good (allow_single: a segment
        rewritten alone, to drop them)."""
        self._check_open()
        if self._replace_all or self._seg_writer is not None or self._pending:
            raise RuntimeError("a merge must be the only change of its commit")
        chosen = [(seg, live) for seg, live in zip(self.base.segments, self.base.live) if seg.name in set(names)]
        if len(chosen) < (1 if allow_single else 2) or self.codec is None:
            return 0
        return self._copy(chosen, None)

    def fill_dense(self, slot: DenseSlot, embed: Callable[[list[str]], np.ndarray]) -> int:
        """Stage a dense slot for the whole index: every segment rewritten with the codes it has
        and one dense vector per live chunk, `embed(texts)`; the slot and the vectors become
        visible together in this commit. Returns the chunks embedded."""
        self._check_open()
        if self._replace_all or self._seg_writer is not None or self._pending or self._new_segments or self._deleted:
            raise RuntimeError("filling the dense slot must be the only change of its commit")
        self.manifest.dense = slot.to_json()
        return self._rewrite_each_segment(embed)

    def reanalyze(self, analysis: Analysis) -> int:
        """Stage BM25 made anew with `analysis` for every live chunk (each segment rewritten
        with the codes and dense vectors it has); new segments use it from this commit on.
        Returns the chunks analysed."""
        self._check_open()
        if self._replace_all or self._seg_writer is not None or self._pending or self._new_segments or self._deleted:
            raise RuntimeError("re-analysing must be the only change of its commit")
        self.manifest.lexical = analysis.to_json()
        return self._rewrite_each_segment(None)

    def _rewrite_each_segment(self, embed: Callable[[list[str]], np.ndarray] | None) -> int:
        """Every segment copied on its own (sizes stay as they are), dense vectors made by
        `embed` or copied; a segment with nothing live is dropped, as a merge drops it."""
        copied = 0
        for seg, live in zip(self.base.segments, self.base.live):
            if live is not None and not live.any():
                self._merged.add(seg.name)
                self.manifest.counts.deleted = max(0, self.manifest.counts.deleted - seg.n_docs)
                continue
            copied += self._copy([(seg, live)], embed)
        return copied

    def _copy(self, chosen: list, embed: Callable[[list[str]], np.ndarray] | None) -> int:
        """The live chunks of `chosen` (segment, live mask) copied into one new segment that
        replaces them: codes as they are; dense vectors copied, or made by `embed`."""
        writer = SegmentWriter(self.path, self._next_name("seg"), self.codec, self.manifest.analysis)
        copied = 0
        try:
            for seg, live in chosen:
                local = np.arange(seg.n_docs) if live is None else np.flatnonzero(live)
                for start in range(0, len(local), 4096):
                    part = local[start:start + 4096]
                    docs = seg.chunks(part)
                    positions, counts = seg.token_ranges(part)
                    texts = [d["text"] for d in docs]
                    dense = (checked_dense(embed(texts), len(part), self.manifest.dense_slot.dim) if embed
                             else None if seg.dense is None else np.asarray(seg.dense[part]))
                    batch = ChunkBatch([d["id"] for d in docs], [np.empty((int(n), 0)) for n in counts],
                                       texts, [d["metadata"] for d in docs], dense)
                    writer.add_encoded(batch, seg.internal_ids[part], seg.codes[positions],
                                       seg.residuals[positions], counts.tolist())
                    copied += len(part)
            info = writer.finish()
        except BaseException:
            writer.abort()
            raise
        self._merged |= {seg.name for seg, _ in chosen}
        self._new_segments.append(_entry(info))
        gone = sum(seg.n_docs for seg, _ in chosen) - copied
        self.manifest.counts.deleted = max(0, self.manifest.counts.deleted - gone)
        return copied

    @property
    def has_changes(self) -> bool:
        """Whether committing would change anything."""
        return bool(self._deleted or self._new_segments or self._seg_writer or self._pending or self._replace_all
                    or self.manifest.user_data != self.base.manifest.user_data
                    or self.manifest.codec != self.base.manifest.codec
                    or self.manifest.dense != self.base.manifest.dense
                    or self.manifest.lexical != self.base.manifest.lexical)

    # ------------------------------------------------------------------ commit
    def commit(self, publish: bool = True) -> None:
        """Publish staged changes atomically, then release the lock. With publish=False, the
        first of two phases: everything is written and durable, the manifest as
        manifest.next.json, and the lock is kept until publish() (or abort())."""
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
                self._new_segments.append(_entry(info))
                _crash_point("segment-written")
            old = [] if self._replace_all else [s for s in self.base.manifest.segments if s.name not in self._merged]
            self.manifest.segments = old + self._new_segments
            if self._deleted and not self._replace_all:
                previous = (load_npy(self.path / self.base.manifest.tombstones)
                            if self.base.manifest.tombstones else np.empty(0, np.int64))
                tombstones = np.union1d(previous, np.fromiter(self._deleted, np.int64))
                name = self._next_name("tombstones") + ".npy"
                tmp = self.path / f".{name}.tmp"
                with open(tmp, "wb") as f:
                    save_npy(f, tombstones)
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, self.path / name)
                self.manifest.tombstones = name
                self.manifest.tombstones_checksum = crc32_of(self.path / name)
                _crash_point("tombstones-written")
            self.manifest.commit = self.base.commit + 1
            self.manifest.format_version = FORMAT_VERSION
            self.manifest.updated_at = time.time()
            _crash_point("before-manifest")
            try:
                self.manifest.write(self.path, MANIFEST if publish else MANIFEST_NEXT)  # the commit point
            except RenameDone as exc:
                log.warning(
                    "commit %d of %s is published but not yet durable: %s", self.manifest.commit, self.path, exc
                )
        except BaseException:
            self.abort()
            raise
        if not publish:
            self.prepared = True
            return
        _crash_point("after-manifest")
        self._after_commit()

    def _after_commit(self) -> None:
        """The commit has happened: move the reader to it and collect the old commit's files, as
        far as possible (what fails here is left to the next refresh and the next writer)."""
        self.committed = True
        try:
            try:
                self._open_latest()
            except Exception as exc:
                log.warning("commit %d of %s: the reader stays at its snapshot for now (%s)", self.manifest.commit,
                            self.path, exc)
            collect_garbage(self.path, self.manifest)
        finally:
            self._close()

    @property
    def commit_number(self) -> int:
        """The commit this writer made (its base's when it made none)."""
        return self.manifest.commit if self.committed else self.base.commit

    def publish(self) -> None:
        """The second phase: the prepared manifest becomes manifest.json, the lock is released."""
        if not self.prepared or self.closed:
            raise RuntimeError("publish() follows commit(publish=False)")
        try:
            publish_prepared(self.path)
        except BaseException:
            # Still prepared: the coordinator's decision is on disk, so the next writer or reader
            # of this index publishes it (settle_prepared). Nothing is collected meanwhile.
            self._close()
            raise
        self._after_commit()

    def abort(self) -> None:
        """Drop staged changes; the index stays at its last commit."""
        if self.closed:
            return
        try:
            if self._seg_writer is not None:
                self._seg_writer.abort()
            if self.prepared:
                (self.path / MANIFEST_NEXT).unlink(missing_ok=True)
            collect_garbage(self.path, self.base.manifest)
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


def same_codec(a: ResidualCodec, b: ResidualCodec) -> bool:
    return (a.nbits == b.nbits and np.array_equal(a.centroids, b.centroids) and np.array_equal(a.cutoffs, b.cutoffs)
            and np.array_equal(a.weights, b.weights))


def publish_prepared(path: Path) -> None:
    """manifest.next.json becomes manifest.json (atomic rename, then the folder made durable;
    a failure to sync after the rename is logged, the commit being published). Someone may have
    done it already (a reader that found it committed): nothing to do then."""
    try:
        durable_rename(path / MANIFEST_NEXT, path / MANIFEST)
    except FileNotFoundError:
        return
    except RenameDone as exc:  # published all the same: the next commit syncs the folder
        log.warning("%s is published but not yet durable: %s", path / MANIFEST, exc)


def settle_prepared(path: Path, settle: Callable[[Manifest], bool] | None) -> None:
    """A commit left prepared by a writer that died: published if `settle` says it was committed,
    else dropped (its files are then collected as any unreferenced ones)."""
    if not (path / MANIFEST_NEXT).exists():
        return
    try:
        prepared = Manifest.read(path, MANIFEST_NEXT)
    except Exception:
        prepared = None
    if prepared is not None and settle is not None and settle(prepared):
        publish_prepared(path)
    else:
        (path / MANIFEST_NEXT).unlink(missing_ok=True)


def merge_candidates(segments: Sequence[SegmentEntry], max_segments: int | None = None) -> list[str]:
    """The segments a tiered merge takes now, if there are more than `max_segments`: the
    smallest, up to MERGE_FACTOR of them, as long as together they hold at most
    MAX_SEGMENT_CHUNKS chunks (at least two, else none). As Lucene's tiered policy caps a merged
    segment's size: finishing a segment builds its inverted file and BM25 index in memory, so
    an uncapped merge of eight 100k-chunk segments (an index that grew past 1M chunks by one
    file) would have held 800k chunks' worth at once and copied gigabytes; full segments are
    left as they are, and a large index simply has more of them."""
    max_segments = MAX_SEGMENTS if max_segments is None else max_segments
    if len(segments) <= max_segments:
        return []
    chosen, total = [], 0
    for s in sorted(segments, key=lambda s: (s.n_chunks, s.name)):
        if len(chosen) == max(2, MERGE_FACTOR) or total + s.n_chunks > MAX_SEGMENT_CHUNKS:
            break
        chosen.append(s.name)
        total += s.n_chunks
    return chosen if len(chosen) >= 2 else []


def _entry(info: dict[str, Any]) -> SegmentEntry:
    """A finished segment (SegmentWriter.finish) as the manifest lists it."""
    return SegmentEntry(info["name"], info["n_docs"], info["n_tokens"], info["checksum"])


_MANAGED = re.compile(r"^(codec-\d+|tombstones-\d+\.npy|\..*\.tmp(-\d+)?|codec-\d+\.tmp)$")


def collect_garbage(path: Path, manifest: Manifest) -> None:
    """Remove files of older commits and of crashed writers (called with the lock held); best
    effort, as what it leaves is only disk space that the next writer collects.

    It keeps what `manifest` names and what the manifest on disk names: a writer that rolls back
    after its commit point (or is wrong about which commit is current) can never delete a file
    of the committed snapshot. When the manifest on disk cannot be read, nothing is collected.
    Readers that still use an older snapshot keep working: their files are open or mapped, and
    unlinking does not take the data away from them.
    """
    try:
        current = Manifest.read(path)
        _collect(path, [manifest] if current.commit == manifest.commit else [manifest, current])
    except Exception as exc:
        log.warning("collecting unreferenced files of %s was left for later: %s", path, exc)


def _collect(path: Path, manifests: list[Manifest]) -> None:
    newest = max(m.commit for m in manifests)
    points = commit_points(path)
    kept = [p for c, p in points if c <= newest][:KEEP_COMMIT_POINTS]
    keep = {name for m in manifests for name in (m.codec, m.tombstones)}
    # The deletion lists of the kept commit points stay too (a few bytes a deleted chunk): a
    # commit that only deleted can then be restored whole when a later manifest is damaged.
    keep |= {_tombstones_of(point) for point in kept}
    for entry in path.iterdir():
        if entry.name in keep or not _MANAGED.match(entry.name):
            continue
        shutil.rmtree(entry, ignore_errors=True) if entry.is_dir() else entry.unlink(missing_ok=True)
    live_segments = {s.name for m in manifests for s in m.segments}
    segments_dir = path / "segments"
    if segments_dir.exists():
        for entry in segments_dir.iterdir():
            if entry.name not in live_segments:
                shutil.rmtree(entry, ignore_errors=True)
    # Commit points: the newest KEEP_COMMIT_POINTS up to the current commit; later ones are of
    # commits that were prepared and never published.
    for _, point in points:
        if point not in kept:
            point.unlink(missing_ok=True)
    for entry in (path / COMMITS_DIR).glob(".*.tmp-*"):
        entry.unlink(missing_ok=True)


def _tombstones_of(point: Path) -> str | None:
    try:
        return Manifest.read(point.parent, point.name).tombstones
    except Exception:
        return None
