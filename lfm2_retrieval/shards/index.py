"""A sharded index: the MultiVectorIndex interface over N shards that share one codec.

    index = ShardedIndex.create("indexes/big", n_shards=4, dim=96, nbits=4)
    with index.writer() as w:                   # every shard's lock; one two-phase commit
        w.add(ids, vectors, texts, metadata)    # each chunk to the shard of its document
    hits = index.search(query_vectors, k=10)    # every shard searched in parallel, top-k merged

Reading: a search runs on every shard (threads: the scoring kernels release the GIL) and the
best k of their hits are kept. All shards compress with one codec, so a chunk's stored vectors,
and so its score, do not depend on its shard; BM25 scores use the term statistics of the whole
collection (each shard's are summed, as Lucene sums those of its segments). The top-k therefore
equals the unsharded index's, up to the search budget, which each segment has on its own.

Writing: a ShardedWriter holds every shard's writer lock and routes each chunk by its document
id (metadata "doc_id", else the chunk id). Its commit is two-phase: each changed shard prepares
its commit (everything written and durable, its manifest as manifest.next.json), then shards.json
is replaced atomically, naming the new shard commits (the commit point), then the shards publish.
A writer that dies before the commit point leaves the previous sharded commit (the next writer
drops the prepared shards); one that dies after it left a commit that the next reader or writer
completes. A reader only ever sees the shard commits of one sharded commit.
"""

from __future__ import annotations

import contextvars
import copy
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import IndexFolderError, InvalidRequestError, ShardUnavailableError
from ..index import Counts, Hit, Manifest, MultiVectorIndex, ResidualCodec, SearchParams, default_num_centroids
from ..index.filters import Filter, validate
from ..index.manifest import MANIFEST_NEXT
from ..index.segment import Segment
from ..index.writer import CODEC_TRAINING_TOKENS, MAX_CODEC_SAMPLE, MAX_SEGMENTS, merge_candidates, publish_prepared
from .shard_map import ShardMap, codec_fingerprint, is_sharded

SHARD_FOLDER = "shard-{:03d}"


def open_index(path: str | os.PathLike) -> "MultiVectorIndex | ShardedIndex":
    """The index at `path`, sharded or not."""
    return ShardedIndex(path) if is_sharded(path) else MultiVectorIndex(path)


@dataclass
class ShardPolicy:
    """How a search treats shards that do not answer: within `timeout_s` seconds (None: no
    limit), else ShardUnavailableError, or, with `allow_partial`, the other shards' results and
    the missing shards' names in `missing`. Set for a block of code with `shard_policy()`."""

    timeout_s: float | None = None
    allow_partial: bool = False
    missing: list[str] = field(default_factory=list)


_POLICY: contextvars.ContextVar[ShardPolicy | None] = contextvars.ContextVar("lfm2_search_shard_policy", default=None)


@contextmanager
def shard_policy(timeout_s: float | None = None, allow_partial: bool = False) -> Iterator[ShardPolicy]:
    """Searches of sharded indexes inside the block follow this policy (the HTTP API sets one per
    request); read `.missing` after it."""
    policy = ShardPolicy(timeout_s, allow_partial)
    token = _POLICY.set(policy)
    try:
        yield policy
    finally:
        _POLICY.reset(token)


@dataclass
class ShardedSnapshot:
    """What a reader of a sharded index sees: one sharded commit's shard snapshots."""

    commit: int
    shards: list  # Snapshot of each shard

    @property
    def segments(self) -> list[Segment]:
        return [seg for snap in self.shards for seg in snap.segments]


class ShardedIndex:
    def __init__(self, path: str | os.PathLike,
                 open_shard: Callable[[Path, str], MultiVectorIndex] | None = None) -> None:
        """open_shard(folder, name): how a shard is opened (default MultiVectorIndex; Ray Serve's
        ingress opens shards whose searches run in their own deployments, distributed/serving.py)."""
        self.path = Path(path)
        self.shard_map = ShardMap.read(self.path)
        self.shards: list[MultiVectorIndex] = []
        for name in self.shard_map.shards:
            if not (self.path / name).is_dir():
                raise IndexFolderError(f"sharded index {self.path}: shard {name} is missing")
        open_shard = open_shard or (lambda folder, name: MultiVectorIndex(folder))
        self.shards = [open_shard(self.path / name, name) for name in self.shard_map.shards]
        # Threads enough for every shard of a few searches at once: a shard that timed out may
        # still hold one, and must not delay the other shards of the next search.
        self._pool = ThreadPoolExecutor(max_workers=4 * len(self.shards), thread_name_prefix="lfm2-search-shard")
        self._sync(self.shard_map)

    # ------------------------------------------------------------------ opening
    @classmethod
    def create(cls, path: str | os.PathLike, n_shards: int, dim: int, nbits: int = 4,
               model_fingerprint: str | None = None, model_source: str | None = None,
               num_centroids: int | None = None) -> "ShardedIndex":
        """A new empty sharded index: N empty shard folders, then the shard map (last, so a
        crash half-way leaves no sharded index, only folders the next create reuses)."""
        path = Path(path)
        if not 1 <= n_shards <= 1024:
            raise InvalidRequestError("the number of shards must be between 1 and 1024")
        if is_sharded(path) or (path / "manifest.json").exists():
            raise IndexFolderError(f"an index already exists at {path}")
        names = [SHARD_FOLDER.format(i) for i in range(n_shards)]
        for name in names:
            MultiVectorIndex.create(path / name, dim=dim, nbits=nbits, model_fingerprint=model_fingerprint,
                                    num_centroids=num_centroids, model_source=model_source, exist_ok=True)
        ShardMap(names, dim, nbits, shard_commits=[0] * n_shards, model_fingerprint=model_fingerprint,
                 model_source=model_source).write(path)
        return cls(path)

    def _sync(self, shard_map: ShardMap) -> None:
        """Move every shard to its commit of `shard_map`'s sharded commit, completing a commit
        whose writer died after the commit point. A shard already past it means the map was
        replaced meanwhile: read it again."""
        for _ in range(100):
            ahead = False
            for s, (shard, wanted) in enumerate(zip(self.shards, shard_map.shard_commits)):
                if shard.commit < wanted:
                    _roll_forward(shard.path, wanted)
                    shard.refresh()
                if shard.commit != wanted:
                    if shard.commit > wanted:
                        ahead = True
                        break
                    raise IndexFolderError(f"sharded index {self.path}: shard {shard_map.shards[s]} is at commit "
                                           f"{shard.commit}, the shard map names {wanted}")
            if not ahead:
                self._check_codecs(shard_map)
                self.shard_map = shard_map
                self._snapshot = ShardedSnapshot(shard_map.commit, [s.snapshot for s in self.shards])
                return
            time.sleep(0.01)
            shard_map = ShardMap.read(self.path)
        raise IndexFolderError(f"could not open a consistent snapshot of the sharded index {self.path}")

    def _check_codecs(self, shard_map: ShardMap) -> None:
        for name, shard in zip(shard_map.shards, self.shards):
            found = codec_fingerprint(shard.manifest.codec_files)
            if found is not None and found != shard_map.codec:
                raise IndexFolderError(
                    f"sharded index {self.path}: shard {name} holds another codec than the shard map's, so its "
                    "scores would not compare (was it changed on its own, e.g. optimized?); split the index again")

    def refresh(self) -> bool:
        """Move to the newest sharded commit; True if there was one."""
        shard_map = ShardMap.read(self.path)
        if shard_map.commit == self.shard_map.commit:
            return False
        self._sync(shard_map)
        return True

    # ------------------------------------------------------------------ facts
    @property
    def snapshot(self) -> ShardedSnapshot:
        return self._snapshot

    @property
    def n_shards(self) -> int:
        return len(self.shards)

    @property
    def commit(self) -> int:
        return self.shard_map.commit

    @property
    def dim(self) -> int:
        return self.shard_map.dim

    @property
    def codec(self) -> ResidualCodec | None:
        return self.shards[0].snapshot.codec

    @property
    def manifest(self) -> Manifest:
        """One manifest for the whole sharded commit: summed counts, every shard's segments."""
        m = self.shard_map
        counts = Counts()
        for shard in self.shards:
            c = shard.manifest.counts
            counts.chunks, counts.tokens, counts.deleted = (counts.chunks + c.chunks, counts.tokens + c.tokens,
                                                            counts.deleted + c.deleted)
        first = self.shards[0].manifest
        return Manifest(dim=m.dim, nbits=m.nbits, commit=m.commit, model_fingerprint=m.model_fingerprint,
                        model_source=m.model_source, num_centroids=first.num_centroids, codec=first.codec,
                        codec_files=dict(first.codec_files),
                        segments=[seg for shard in self.shards for seg in shard.manifest.segments],
                        counts=counts, user_data=copy.deepcopy(m.user_data))

    def __len__(self) -> int:
        return sum(len(shard) for shard in self.shards)

    def check_compatible(self, dim: int, model_fingerprint: str | None = None) -> None:
        self.shards[0].check_compatible(dim, model_fingerprint)

    def stats(self) -> dict[str, Any]:
        per_shard = [shard.stats() for shard in self.shards]
        out = {key: sum(s[key] for s in per_shard) for key in ("chunks", "tokens", "deleted", "segments",
                                                                   "bytes_on_disk")}
        return {**out, "commit": self.commit, "shards": self.n_shards, "dim": self.dim,
                "nbits": self.shard_map.nbits, "centroids": per_shard[0]["centroids"],
                "model_fingerprint": self.shard_map.model_fingerprint}

    # ------------------------------------------------------------------ reading chunks
    def get(self, ids: Sequence[str]) -> list[dict[str, Any] | None]:
        found: list[dict[str, Any] | None] = [None] * len(ids)
        for shard in self.shards:
            for i, doc in enumerate(shard.get(ids)):
                if doc is not None:
                    found[i] = doc
        return found

    def vectors(self, ids: Sequence[str]) -> list[np.ndarray | None]:
        found: list[np.ndarray | None] = [None] * len(ids)
        for shard in self.shards:
            for i, v in enumerate(shard.vectors(ids)):
                if v is not None:
                    found[i] = v
        return found

    def scan_metadata(self, keys: Sequence[str], filter: Filter | None = None) -> Iterable[tuple[str, dict[str, Any]]]:
        for shard in self.shards:
            yield from shard.scan_metadata(keys, filter)

    def ids_where(self, filter: Filter) -> list[str]:
        return [chunk for shard in self.shards for chunk in shard.ids_where(filter)]

    def iter_chunks(self, offset: int = 0, limit: int | None = None) -> Iterable[dict[str, Any]]:
        seen = 0
        for shard in self.shards:
            n = len(shard)
            if seen + n <= offset:
                seen += n
                continue
            start = max(offset - seen, 0)
            want = None if limit is None else offset + limit - seen - start
            for doc in shard.iter_chunks(start, want):
                yield doc
            seen += n
            if limit is not None and seen >= offset + limit:
                return

    # ------------------------------------------------------------------ search
    def _each_shard(self, call: Callable[[MultiVectorIndex, Any], Any], snapshots: list | None = None) -> list[Any]:
        """call(shard, its snapshot) on every shard at once, the snapshots all of the sharded
        commit this reader is at when the call begins (a refresh meanwhile, by another thread,
        never mixes two commits in one answer); the answers of the shards that gave one. A shard
        that raised ShardUnavailableError or did not answer within the policy's timeout is
        missing: an error, or left out and named in the policy if it allows partial results.
        Any other error is raised as it is (a bad filter is the request's fault, not the shard's)."""
        policy = _POLICY.get()
        snapshots = snapshots or self._snapshot.shards
        futures = [self._pool.submit(contextvars.copy_context().run, call, shard, snap)
                   for shard, snap in zip(self.shards, snapshots)]
        done, _ = wait(futures, timeout=policy.timeout_s if policy else None)
        answers, missing = [], []
        for name, future in zip(self.shard_map.shards, futures):
            if future not in done:
                missing.append((name, f"did not answer within {policy.timeout_s:g} s"))
                continue
            exc = future.exception()
            if isinstance(exc, ShardUnavailableError):
                missing.append((name, exc.reason))
            elif exc is not None:
                raise exc
            else:
                answers.append(future.result())
        if missing:
            if policy is None or not policy.allow_partial:
                raise ShardUnavailableError([n for n, _ in missing], missing[0][1])
            policy.missing.extend(n for n, _ in missing if n not in policy.missing)
        return answers

    def shard_health(self) -> list[dict[str, Any]]:
        """Each shard: name, chunks, commit, status ("ok", or "unavailable" and why)."""
        out = []
        for name, shard in zip(self.shard_map.shards, self.shards):
            try:
                facts = shard.health() if hasattr(shard, "health") else {"chunks": len(shard), "commit": shard.commit}
                out.append({"name": name, "status": "ok", **facts})
            except ShardUnavailableError as exc:
                out.append({"name": name, "status": "unavailable", "problem": exc.reason})
        return out

    def search(self, queries, k: int = 10, filter: Filter | None = None, exhaustive: bool = False,
               params: SearchParams | None = None):
        """Top-k chunks by MaxSim: every shard's top-k, merged (see MultiVectorIndex.search)."""
        single = isinstance(queries, np.ndarray) and queries.ndim == 2
        batch = [queries] if single else list(queries)
        if k < 1:
            raise ValueError("k must be at least 1")
        if filter is not None:
            validate(filter)
        params = params or SearchParams.for_k(k, self.shard_map.nbits)
        plans = None
        if not exhaustive and all(getattr(s, "takes_query_plans", False) for s in self.shards):
            # One codec: a query's centroid scores are the same for every shard, computed once.
            plans = next((s.query_plans(batch, params) for s in self.shards if s.snapshot.codec is not None), None)
        per_shard = self._each_shard(lambda shard, snap: shard.search(batch, k, filter, exhaustive, params, plans,
                                                                      snapshot=snap))
        results = [merge_top_k([hits[q] for hits in per_shard], k) for q in range(len(batch))]
        return results[0] if single else results

    def lexical_statistics(self, query: str) -> tuple[int, dict[str, int], int | None]:
        return self.lexical_statistics_of([query])[0]

    def lexical_statistics_of(self, queries: Sequence[str], snapshots: list | None = None) -> list[tuple]:
        """The whole collection's BM25 statistics of each query (the shards' summed)."""
        per_shard = self._each_shard(lambda shard, snap: [shard.lexical_statistics(q, snapshot=snap) for q in queries],
                                     snapshots)
        return [sum_statistics([answer[i] for answer in per_shard]) for i in range(len(queries))]

    def search_lexical(self, queries: Sequence[str], k: int = 10, filter: Filter | None = None,
                       collections: Sequence[tuple] | None = None) -> list[list[Hit]]:
        """Top-k chunks by BM25, every shard scoring with the whole collection's statistics."""
        if k < 1:
            raise ValueError("k must be at least 1")
        if filter is not None:
            validate(filter)
        queries, snapshots = list(queries), self._snapshot.shards  # statistics and scores of one commit
        if collections is None:
            collections = self.lexical_statistics_of(queries, snapshots)
        per_shard = self._each_shard(lambda shard, snap: shard.search_lexical(queries, k, filter, collections,
                                                                              snapshot=snap), snapshots)
        return [merge_top_k([hits[q] for hits in per_shard], k) for q in range(len(queries))]

    # ------------------------------------------------------------------ writing
    def writer(self, expected_tokens: int | None = None, timeout: float = 0.0) -> "ShardedWriter":
        return ShardedWriter(self, expected_tokens, timeout)

    # One commit each, through the writer: the same code as an unsharded index's.
    add, upsert, delete = MultiVectorIndex.add, MultiVectorIndex.upsert, MultiVectorIndex.delete

    def merge_segments(self, max_segments: int = MAX_SEGMENTS, timeout: float = 0.0) -> int:
        """Tiered merging in every shard that needs it, in one sharded commit."""
        if not any(merge_candidates(shard.manifest.segments, max_segments) for shard in self.shards):
            return 0
        with self.writer(timeout=timeout) as w:
            return w.merge_segments(max_segments)

    def optimize(self, reencode=None, nbits: int | None = None) -> None:
        """Every shard's segments merged into one, deleted chunks dropped for good. The shared
        codec is kept: retraining it (nbits, reencode) would have to rewrite every shard at once;
        optimize the unsharded index and split it again for that."""
        if reencode is not None or (nbits is not None and nbits != self.shard_map.nbits):
            raise InvalidRequestError("a sharded index keeps its shared codec: optimize --reencode or --nbits is not "
                                      "available on it (optimize the unsharded index, then split it again)")
        with self.writer() as w:
            w.merge_segments(max_segments=0)

    def close(self) -> None:
        self._pool.shutdown(wait=False)


def merge_top_k(lists: Sequence[Sequence[Hit]], k: int) -> list[Hit]:
    """The best k hits of several shards' ranked lists (a stable sort: ties keep shard order)."""
    return sorted((h for hits in lists for h in hits), key=lambda h: -h.score)[:k]


def sum_statistics(parts: Sequence[tuple]) -> tuple[int, dict[str, int], int | None]:
    """BM25 statistics of a collection (texts, document frequencies, total length) from its parts'."""
    n_docs, df, total = 0, {}, 0
    for n, part, length in parts:
        n_docs += n
        total = None if total is None or length is None else total + length
        for token, count in part.items():
            df[token] = df.get(token, 0) + count
    return n_docs, df, total


def _roll_forward(shard_path: Path, wanted: int) -> None:
    """Publish a shard's prepared commit if it is the one the shard map names (its writer died
    after the sharded commit point)."""
    try:
        prepared = Manifest.read(shard_path, MANIFEST_NEXT)
    except Exception:  # noqa: BLE001 - absent (already published) or never finished: nothing to do
        return
    if prepared.commit == wanted:
        publish_prepared(shard_path)


class ShardedWriter:
    """The writer of a sharded index (the IndexWriter interface): every shard's lock, chunks
    routed by document, one two-phase commit. Until the shards have a codec, chunks wait: the
    first ~1M tokens of all shards together train the one codec they all take."""

    def __init__(self, index: ShardedIndex, expected_tokens: int | None = None, timeout: float = 0.0) -> None:
        self.index = index
        self.expected_tokens = expected_tokens or 0
        self.writers = []
        self.closed = False
        try:
            for s, shard in enumerate(index.shards):
                self.writers.append(shard.writer(timeout=timeout, settle=self._settler(s)))
            self.shard_map = ShardMap.read(index.path)  # as of the locks: no other writer can change it now
            index._sync(self.shard_map)
            self.manifest = index.manifest  # what WriteSession reads (user data), changed as staged
            self.codec = self.writers[0].codec
        except BaseException:
            self._abort_all()
            raise
        self._pending: list[tuple] = []  # (ids, vectors, texts, metadata, replace) waiting for a codec
        self._pending_tokens = 0

    def _settler(self, s: int):
        def settle(prepared: Manifest) -> bool:
            return prepared.commit <= ShardMap.read(self.index.path).shard_commits[s]
        return settle

    def __enter__(self) -> "ShardedWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.abort()

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
    def add(self, ids, vectors, texts=None, metadata=None, *, replace: bool = False) -> None:
        self._check_open()
        if self.codec is None:
            self._pending.append((list(ids), list(vectors), texts, metadata, replace))
            self._pending_tokens += sum(len(v) for v in vectors)
            if self._pending_tokens >= CODEC_TRAINING_TOKENS:
                self._train_codec()
            return
        for s, rows in self._route(ids, metadata, replace).items():
            self.writers[s].add([ids[r] for r in rows], [vectors[r] for r in rows], _pick(texts, rows),
                                _pick(metadata, rows), replace=replace)

    def upsert(self, ids, vectors, texts=None, metadata=None) -> None:
        self.add(ids, vectors, texts, metadata, replace=True)

    def add_encoded(self, ids, codes: np.ndarray, residuals: np.ndarray, lengths: Sequence[int], texts=None,
                    metadata=None, *, replace: bool = False) -> None:
        """Chunks compressed by the shared codec (IndexWriter.add_encoded), routed by document."""
        self._check_open()
        if self.codec is None:
            raise ValueError("this sharded index has no codec yet: add vectors first, or set one with use_codec")
        starts = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        for s, rows in self._route(ids, metadata, replace).items():
            positions = np.concatenate([np.arange(starts[r], starts[r + 1]) for r in rows])
            self.writers[s].add_encoded([ids[r] for r in rows], codes[positions], residuals[positions],
                                        [lengths[r] for r in rows], _pick(texts, rows), _pick(metadata, rows),
                                        replace=replace)

    def use_codec(self, codec: ResidualCodec) -> None:
        """The codec every shard compresses with (e.g. trained once from a sample by a
        distributed build, or the codec of the index being split)."""
        self._check_open()
        for writer in self.writers:
            writer.use_codec(codec)
        self.codec = codec
        pending, self._pending, self._pending_tokens = self._pending, [], 0
        for ids, vectors, texts, metadata, replace in pending:
            self.add(ids, vectors, texts, metadata, replace=replace)

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
            new_map.write(self.index.path)  # the commit point
        except BaseException:
            self._abort_all()
            raise
        _crash_point("shard-map-written")
        try:
            for writer in prepared:
                writer.publish()
        finally:
            self.closed = True
            self._abort_all()  # releases whatever a failed publish left (the next open completes it)
        self.index._sync(ShardMap.read(self.index.path))

    def abort(self) -> None:
        self._abort_all()

    def _abort_all(self) -> None:
        self.closed = True
        for writer in self.writers:
            try:
                writer.abort()
            except Exception:  # noqa: BLE001 - release every lock whatever one shard's clean-up met
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
