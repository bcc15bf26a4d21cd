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
from collections import Counter
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import IndexFolderError, InvalidRequestError, ShardUnavailableError
from ..index import Counts, Hit, Manifest, MultiVectorIndex, ResidualCodec, SearchParams
from ..index.contract import Capabilities, ShardSearch
from ..index.analysis import Analysis
from ..index.filters import Filter, validate
from ..index.analysis import LexicalQuery, query_languages
from ..index.lexical import TermStatistics
from ..index.dense import DenseSlot
from ..index.manifest import MANIFEST_NEXT
from ..index.segment import Segment
from ..index.writer import MAX_SEGMENTS, merge_candidates, publish_prepared
from .policy import current_policy
from .shard_map import ShardMap, codec_fingerprint, is_sharded
from .writer import ShardedWriter

SHARD_FOLDER = "shard-{:03d}"


def open_index(path: str | os.PathLike) -> "MultiVectorIndex | ShardedIndex":
    """The index at `path`, sharded or not."""
    return ShardedIndex(path) if is_sharded(path) else MultiVectorIndex(path)


@dataclass
class ShardedSnapshot:
    """What a reader of a sharded index sees: one sharded commit's shard snapshots."""

    commit: int
    shards: list  # Snapshot of each shard

    @property
    def segments(self) -> list[Segment]:
        return [seg for snap in self.shards for seg in snap.segments]


class ShardedIndex:
    """A SearchableIndex (index/contract.py) over N shard folders."""

    capabilities = Capabilities(shards=True)

    def __init__(self, path: str | os.PathLike,
                 search_on: Callable[[MultiVectorIndex, str], ShardSearch] | None = None) -> None:
        """Each shard is its folder's MultiVectorIndex (read and written here); search_on(shard,
        name): where its searches run (default: the shard itself; Ray Serve's ingress sends them
        to the shard's deployment, distributed/serving.py)."""
        self.path = Path(path)
        self.shard_map = ShardMap.read(self.path)
        self.shards: list[MultiVectorIndex] = []
        for name in self.shard_map.shards:
            if not (self.path / name).is_dir():
                raise IndexFolderError(f"sharded index {self.path}: shard {name} is missing")
        self.shards = [MultiVectorIndex(self.path / name) for name in self.shard_map.shards]
        self.searchers: list[ShardSearch] = [shard if search_on is None else search_on(shard, name)
                                             for shard, name in zip(self.shards, self.shard_map.shards)]
        # Threads enough for every shard of a few searches at once: a shard that timed out may
        # still hold one, and must not delay the other shards of the next search.
        self._pool = ThreadPoolExecutor(max_workers=4 * len(self.shards), thread_name_prefix="lfm2-search-shard")
        self.move_to(self.shard_map)

    # ------------------------------------------------------------------ opening
    @classmethod
    def create(cls, path: str | os.PathLike, n_shards: int, dim: int, nbits: int = 4,
               model_fingerprint: str | None = None, model_source: str | None = None,
               num_centroids: int | None = None, dense: DenseSlot | None = None,
               analysis: Analysis | None = None) -> "ShardedIndex":
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
                                    num_centroids=num_centroids, model_source=model_source, exist_ok=True,
                                    dense=dense, analysis=analysis)
        ShardMap(names, dim, nbits, shard_commits=[0] * n_shards, model_fingerprint=model_fingerprint,
                 model_source=model_source).write(path)
        return cls(path)

    def move_to(self, shard_map: ShardMap) -> None:
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
                self._manifest = self._combined_manifest()
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
        self.move_to(shard_map)
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
        """One manifest for the whole sharded commit (made when the reader moves to it; read-only,
        as a snapshot's manifest is)."""
        return self._manifest

    def _combined_manifest(self) -> Manifest:
        """Summed counts, every shard's segments, the shard map's facts."""
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
                        counts=counts, user_data=copy.deepcopy(m.user_data), dense=copy.deepcopy(first.dense),
                        lexical=copy.deepcopy(first.lexical))

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
                "model_fingerprint": self.shard_map.model_fingerprint, "dense": per_shard[0].get("dense"),
                "lexical": per_shard[0].get("lexical")}

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
    def _each_shard(self, call: Callable[[ShardSearch, Any], Any], snapshots: list | None = None) -> list[Any]:
        """call(searcher, its snapshot) on every shard at once, the snapshots all of the sharded
        commit this reader is at when the call begins (a refresh meanwhile, by another thread,
        never mixes two commits in one answer); the answers of the shards that gave one. A shard
        that raised ShardUnavailableError or did not answer within the policy's timeout is
        missing: an error, or left out and named in the policy if it allows partial results.
        Any other error is raised as it is (a bad filter is the request's fault, not the shard's)."""
        policy = current_policy()
        snapshots = snapshots or self._snapshot.shards
        futures = [self._pool.submit(contextvars.copy_context().run, call, shard, snap)
                   for shard, snap in zip(self.searchers, snapshots)]
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
        for name, searcher in zip(self.shard_map.shards, self.searchers):
            try:
                facts = searcher.health()
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
        filter = None if filter is None else validate(filter)
        params = params or SearchParams.for_k(k, self.shard_map.nbits)
        plans = None
        if not exhaustive and all(s.capabilities.query_plans for s in self.searchers):
            # One codec: a query's centroid scores are the same for every shard, computed once.
            plans = next((s.query_plans(batch, params) for s in self.shards if s.snapshot.codec is not None), None)
        per_shard = self._each_shard(lambda shard, snap: shard.search(batch, k, filter, exhaustive, params, plans,
                                                                      snapshot=snap))
        results = [merge_top_k([hits[q] for hits in per_shard], k) for q in range(len(batch))]
        return results[0] if single else results

    def search_dense(self, queries: np.ndarray, k: int = 10, filter: Filter | None = None) -> list[list[Hit]]:
        """Top-k chunks by dense inner product: every shard's top-k, merged."""
        filter = None if filter is None else validate(filter)
        per_shard = self._each_shard(lambda shard, snap: shard.search_dense(queries, k, filter, snapshot=snap))
        return [merge_top_k([hits[q] for hits in per_shard], k) for q in range(len(queries))]

    def fill_dense(self, slot: DenseSlot, embed, timeout: float = 0.0) -> int:
        """The dense slot filled in every shard, one sharded commit."""
        with self.writer(timeout=timeout) as w:
            return sum(writer.fill_dense(slot, embed) for writer in w.writers)

    def lexical_statistics(self, query: str | LexicalQuery) -> TermStatistics:
        return self.lexical_statistics_of([self.resolve_query(query)])[0]

    def lexical_statistics_of(self, queries: Sequence[LexicalQuery],
                              snapshots: list | None = None) -> list[TermStatistics]:
        """The whole collection's BM25 statistics of each query (the shards' summed)."""
        per_shard = self._each_shard(lambda shard, snap: [shard.lexical_statistics(q, snapshot=snap) for q in queries],
                                     snapshots)
        return [TermStatistics.total(answer[i] for answer in per_shard) for i in range(len(queries))]

    def language_docs(self, snapshots: list | None = None) -> dict[str, int]:
        """Chunks per language over every shard (MultiVectorIndex.language_docs)."""
        return dict(sum((Counter(shard.language_docs(snapshot=snap))
                         for shard, snap in zip(self.shards, snapshots or self._snapshot.shards)), Counter()))

    def resolve_query(self, query: str | LexicalQuery, snapshots: list | None = None) -> LexicalQuery:
        """A query text with the languages BM25 analyses it in, by the whole collection's
        languages: every shard then reads it alike."""
        if isinstance(query, LexicalQuery):
            return query
        return LexicalQuery(query, query_languages(query, self.language_docs(snapshots)))

    def search_lexical(self, queries: Sequence[str | LexicalQuery], k: int = 10, filter: Filter | None = None,
                       collections: Sequence[TermStatistics] | None = None) -> list[list[Hit]]:
        """Top-k chunks by BM25, every shard scoring with the whole collection's statistics."""
        if k < 1:
            raise ValueError("k must be at least 1")
        filter = None if filter is None else validate(filter)
        snapshots = self._snapshot.shards  # statistics and scores of one commit
        queries = [self.resolve_query(q, snapshots) for q in queries]
        if collections is None:
            collections = self.lexical_statistics_of(queries, snapshots)
        per_shard = self._each_shard(lambda shard, snap: shard.search_lexical(queries, k, filter, collections,
                                                                              snapshot=snap), snapshots)
        return [merge_top_k([hits[q] for hits in per_shard], k) for q in range(len(queries))]

    # ------------------------------------------------------------------ writing
    def writer(self, expected_tokens: int | None = None, timeout: float = 0.0) -> ShardedWriter:
        def move_to(shard_map: ShardMap) -> Manifest:
            self.move_to(shard_map)
            return self.manifest.copy()  # the writer's, changed as it stages

        return ShardedWriter(self.path, self.shards, move_to, expected_tokens, timeout)

    # One commit each, through the writer: the same code as an unsharded index's.
    add, upsert, delete = MultiVectorIndex.add, MultiVectorIndex.upsert, MultiVectorIndex.delete

    def merge_segments(self, max_segments: int = MAX_SEGMENTS, timeout: float = 0.0) -> int:
        """Tiered merging in every shard that needs it, in one sharded commit."""
        if not any(merge_candidates(shard.manifest.segments, max_segments) for shard in self.shards):
            return 0
        with self.writer(timeout=timeout) as w:
            return w.merge_segments(max_segments)

    def optimize(self, reencode=None, nbits: int | None = None, reencode_dense=None,
                 analysis: Analysis | None = None) -> None:
        """Every shard's segments merged into one, deleted chunks dropped for good, then BM25
        re-analysed where `analysis` asks for another (or the shards predate analysis: today's
        default), a second sharded commit. The shared codec is kept: retraining it (nbits,
        reencode) would have to rewrite every shard at once; optimize the unsharded index and
        split it again for that."""
        if reencode is not None or reencode_dense is not None or (nbits is not None and nbits != self.shard_map.nbits):
            raise InvalidRequestError("a sharded index keeps its shared codec: optimize --reencode or --nbits is not "
                                      "available on it (optimize the unsharded index, then split it again)")
        with self.writer() as w:
            w.merge_segments(max_segments=0)
        manifests = [shard.manifest for shard in self.shards]
        wanted = analysis or (manifests[0].analysis if manifests and manifests[0].lexical else Analysis())
        if any(m.lexical != wanted.to_json() for m in manifests):
            self.reanalyze(wanted)

    def reanalyze(self, analysis: Analysis, timeout: float = 0.0) -> int:
        """BM25 of every shard made anew with `analysis` (MultiVectorIndex.reanalyze), one sharded commit."""
        with self.writer(timeout=timeout) as w:
            return sum(writer.reanalyze(analysis) for writer in w.writers)

    def close(self) -> None:
        """Stop the shards' thread pool and release every shard's files (MultiVectorIndex.close)."""
        self._pool.shutdown(wait=False)
        for shard in self.shards:
            shard.close()


def merge_top_k(lists: Sequence[Sequence[Hit]], k: int) -> list[Hit]:
    """The best k hits of several shards' ranked lists (a stable sort: ties keep shard order)."""
    return sorted((h for hits in lists for h in hits), key=lambda h: -h.score)[:k]


def _roll_forward(shard_path: Path, wanted: int) -> None:
    """Publish a shard's prepared commit if it is the one the shard map names (its writer died
    after the sharded commit point)."""
    try:
        prepared = Manifest.read(shard_path, MANIFEST_NEXT)
    except Exception:
        return
    if prepared.commit == wanted:
        publish_prepared(shard_path)
