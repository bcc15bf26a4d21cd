"""The writer of a sharded index: every shard's lock, chunks routed by document, one commit.

    with sharded_index.writer() as w:           # ShardedIndex.writer()
        w.add(ids, vectors, texts, metadata)    # each chunk to the shard of its document
        w.delete(["old-id"])                    # wherever it is stored
    # leaving the block commits every changed shard in two phases (see ShardedIndex)

It has the IndexWriter interface, so the engine's writing sessions (and through them ingestion
and the API) write to a sharded index unchanged. Until the shards have a codec, chunks wait:
the first ~1M tokens of all shards together train the one codec every shard takes.
"""

from __future__ import annotations

import copy
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..index import Manifest, MultiVectorIndex, ResidualCodec, default_num_centroids
from ..index.writer import CODEC_TRAINING_TOKENS, MAX_CODEC_SAMPLE, MAX_SEGMENTS, merge_candidates
from ..index.contract import Transaction
from ..index.storage import RenameDone
from .shard_map import ShardMap, codec_fingerprint

log = logging.getLogger("lfm2_search.shards")


class ShardedWriter(Transaction):
    """The writer of a sharded index (the IndexWriter interface): every shard's lock, chunks
    routed by document, one two-phase commit. Until the shards have a codec, chunks wait: the
    first ~1M tokens of all shards together train the one codec they all take."""

    def __init__(self, path: Path, shards: Sequence[MultiVectorIndex], move_to: Callable[[ShardMap], Manifest],
                 expected_tokens: int | None = None, timeout: float = 0.0) -> None:
        """path: the sharded index; shards: its shards, opened; move_to: moves the sharded index's
        reader to a sharded commit and returns its manifest (called once every lock is held,
        and after committing), as IndexWriter's open_latest."""
        self.path, self._move_to = path, move_to
        self.expected_tokens = expected_tokens or 0
        self.writers = []
        self.closed = False
        try:
            for s, shard in enumerate(shards):
                self.writers.append(shard.writer(timeout=timeout, settle=self._settler(s)))
            self.shard_map = ShardMap.read(path)  # as of the locks: no other writer can change it now
            self.manifest = move_to(self.shard_map)  # what WriteSession reads (user data), changed as staged
            self.codec = self.writers[0].codec
        except BaseException:
            self._abort_all()
            raise
        self.committed_map: ShardMap | None = None  # set once this writer's commit is published
        self._pending: list[tuple] = []  # (ids, vectors, texts, metadata, replace) waiting for a codec
        self._pending_tokens = 0

    def _settler(self, s: int):
        def settle(prepared: Manifest) -> bool:
            return prepared.commit <= ShardMap.read(self.path).shard_commits[s]
        return settle

    # ------------------------------------------------------------------ routing
    def _shard_of(self, chunk_id: str, metadata: dict[str, Any] | None) -> int:
        key = (metadata or {}).get("doc_id") or chunk_id
        return self.shard_map.shard_of(str(key))

    def _route(self, ids: Sequence[str], metadata: Sequence[dict] | None, replace: bool) -> dict[int, list[int]]:
        """Rows of each shard; with `replace`, a chunk stored in another shard (its document id
        changed) is deleted there."""
        groups: dict[int, list[int]] = {}
        for row, chunk in enumerate(ids):
            s = self._shard_of(str(chunk), None if metadata is None else metadata[row])
            groups.setdefault(s, []).append(row)
            if replace:
                for other, writer in enumerate(self.writers):
                    if other != s and writer.contains(str(chunk)):
                        writer.delete([str(chunk)])
        return groups

    # ------------------------------------------------------------------ changes
    def add(self, ids, vectors, texts=None, metadata=None, *, replace: bool = False, dense=None) -> None:
        self._check_open()
        if self.codec is None:
            self._pending.append((list(ids), list(vectors), texts, metadata, replace, dense))
            self._pending_tokens += sum(len(v) for v in vectors)
            if self._pending_tokens >= CODEC_TRAINING_TOKENS:
                self._train_codec()
            return
        for s, rows in self._route(ids, metadata, replace).items():
            self.writers[s].add([ids[r] for r in rows], [vectors[r] for r in rows], _pick(texts, rows),
                                _pick(metadata, rows), replace=replace,
                                dense=None if dense is None else np.asarray(dense)[rows])

    def upsert(self, ids, vectors, texts=None, metadata=None) -> None:
        self.add(ids, vectors, texts, metadata, replace=True)

    def add_encoded(self, ids, codes: np.ndarray, residuals: np.ndarray, lengths: Sequence[int], texts=None,
                    metadata=None, *, replace: bool = False, dense: np.ndarray | None = None) -> None:
        """Chunks compressed by the shared codec (IndexWriter.add_encoded), routed by document."""
        self._check_open()
        if self.codec is None:
            raise ValueError("this sharded index has no codec yet: add vectors first, or set one with use_codec")
        starts = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        for s, rows in self._route(ids, metadata, replace).items():
            positions = np.concatenate([np.arange(starts[r], starts[r + 1]) for r in rows])
            self.writers[s].add_encoded([ids[r] for r in rows], codes[positions], residuals[positions],
                                        [lengths[r] for r in rows], _pick(texts, rows), _pick(metadata, rows),
                                        replace=replace, dense=None if dense is None else np.asarray(dense)[rows])

    def use_codec(self, codec: ResidualCodec) -> None:
        """The codec every shard compresses with (e.g. trained once from a sample by a
        distributed build, or the codec of the index being split)."""
        self._check_open()
        for writer in self.writers:
            writer.use_codec(codec)
        self.codec = codec
        pending, self._pending, self._pending_tokens = self._pending, [], 0
        for ids, vectors, texts, metadata, replace, dense in pending:
            self.add(ids, vectors, texts, metadata, replace=replace, dense=dense)

    def _train_codec(self) -> None:
        vectors = np.concatenate([v for p in self._pending for v in p[1]]).astype(np.float32, copy=False)
        n_tokens = max(len(vectors), self.expected_tokens, self.manifest.counts.tokens)
        k = self.manifest.num_centroids or default_num_centroids(n_tokens)
        if len(vectors) > MAX_CODEC_SAMPLE:
            vectors = vectors[np.random.default_rng(0).choice(len(vectors), MAX_CODEC_SAMPLE, replace=False)]
        self.use_codec(ResidualCodec.train(vectors, self.shard_map.nbits, num_centroids=k))

    def delete(self, ids: Sequence[str]) -> int:
        """Deletes chunks by id wherever they are stored; returns how many existed."""
        self._check_open()
        ids = [str(i) for i in ids]
        waiting = {str(i) for p in self._pending for i in p[0]}
        if waiting.intersection(ids):
            raise RuntimeError("chunks added by this writer before the shards had a codec cannot be deleted by it")
        return sum(writer.delete(ids) for writer in self.writers)

    def contains(self, chunk_id: str) -> bool:
        return any(writer.contains(chunk_id) for writer in self.writers)

    def merge_segments(self, max_segments: int = MAX_SEGMENTS) -> int:
        """Stage a tiered merge in every shard that has more than `max_segments` segments (0: all
        of a shard's segments into one, deleted chunks dropped)."""
        merged = 0
        for writer in self.writers:
            segments = writer.base.manifest.segments
            chosen = ([s.name for s in segments] if max_segments == 0 else merge_candidates(segments, max_segments))
            if max_segments == 0 and len(segments) == 1 and not writer.base.manifest.counts.deleted:
                continue  # one segment without deleted chunks: nothing to gain
            if chosen:
                writer.merge(chosen, allow_single=max_segments == 0)
                merged += len(chosen)
        return merged

    def set_user_data(self, data: dict[str, Any]) -> None:
        self._check_open()
        self.manifest.user_data = copy.deepcopy(dict(data))

    @property
    def has_changes(self) -> bool:
        return bool(self._pending or any(w.has_changes for w in self.writers)
                    or self.manifest.user_data != self.shard_map.user_data)

    # ------------------------------------------------------------------ commit
    def commit(self) -> None:
        self._check_open()
        try:
            if self._pending:
                self._train_codec()
            if not self.has_changes:
                self._abort_all()
                return
            prepared, commits = [], list(self.shard_map.shard_commits)
            for s, writer in enumerate(self.writers):
                if writer.has_changes:
                    writer.commit(publish=False)
                    prepared.append(writer)
                    commits[s] = writer.manifest.commit
                else:
                    writer.abort()  # nothing of this shard changes: no commit of its own
            _crash_point("shards-prepared")
            new_map = copy.deepcopy(self.shard_map)
            new_map.commit += 1
            new_map.shard_commits = commits
            new_map.user_data = copy.deepcopy(self.manifest.user_data)
            new_map.codec = codec_fingerprint(self.writers[0].manifest.codec_files) or new_map.codec
            try:
                new_map.write(self.path)  # the commit point
            except RenameDone as exc:
                log.warning(
                    "sharded commit %d of %s is published but not yet durable: %s", new_map.commit, self.path, exc
                )
        except BaseException:
            self._abort_all()
            raise
        _crash_point("shard-map-written")
        # Committed: from here on nothing is raised. A shard whose prepared commit is not published
        # now is published when the shard is next opened (ShardedIndex rolls it forward).
        self.committed_map = new_map
        for writer in prepared:
            try:
                writer.publish()
            except Exception as exc:
                log.warning("shard %s: its part of sharded commit %d is published on its next open (%s)",
                            writer.path, new_map.commit, exc)
        self.closed = True
        self._abort_all()  # releases the lock of any shard whose publishing failed
        try:
            self._move_to(ShardMap.read(self.path))
        except Exception as exc:
            log.warning("sharded commit %d of %s: the reader stays at its snapshot for now (%s)", new_map.commit,
                        self.path, exc)

    @property
    def commit_number(self) -> int:
        """The sharded commit this writer made (the one it started from when it made none)."""
        return self.committed_map.commit if self.committed_map is not None else self.shard_map.commit

    def abort(self) -> None:
        self._abort_all()

    def _abort_all(self) -> None:
        self.closed = True
        for writer in self.writers:
            try:
                writer.abort()
            except Exception:
                pass

    def _check_open(self) -> None:
        if self.closed:
            raise RuntimeError("this writer has already committed or aborted")


def _pick(values, rows: list[int]):
    return None if values is None else [values[r] for r in rows]


def _crash_point(name: str) -> None:
    """Test hook, as the index writer's: die like `kill -9` here when LFM2_SEARCH_CRASH_AT names it."""
    if os.environ.get("LFM2_SEARCH_CRASH_AT") == name:
        os._exit(137)
