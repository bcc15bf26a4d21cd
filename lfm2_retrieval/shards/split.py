"""An existing index split into N shards: `lfm2-search shard --shards N`.

Every live chunk is copied to the shard of its document with its codes and residuals as they
are (and its dense vector, in an index with a dense slot), and every shard takes the source's
codec: no vector is decompressed or compressed again, so each chunk scores in its shard exactly
as it did in the source. The source is read from one
snapshot and never changed; the shards appear by one sharded commit, so an interrupted split
leaves no half-made sharded index (run it again into an empty folder).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np

from ..errors import IndexFolderError
from ..index import MultiVectorIndex
from .index import ShardedIndex
from .shard_map import is_sharded

BLOCK = 4096  # chunks read from the source at a time


def split_index(source: str | os.PathLike, target: str | os.PathLike, n_shards: int) -> ShardedIndex:
    source, target = Path(source), Path(target)
    if is_sharded(source):
        raise IndexFolderError(f"{source} is sharded already")
    index = MultiVectorIndex(source)
    snap = index.snapshot
    if target.exists() and any(target.iterdir()):
        raise IndexFolderError(f"{target} is not empty; split into a new folder")
    m = snap.manifest
    try:
        sharded = ShardedIndex.create(target, n_shards, dim=m.dim, nbits=m.nbits, model_fingerprint=m.model_fingerprint,
                                      model_source=m.model_source, num_centroids=m.num_centroids,
                                      dense=m.dense_slot, analysis=m.analysis)
        with sharded.writer() as w:
            if snap.codec is not None:
                w.use_codec(snap.codec)
            for seg, live in zip(snap.segments, snap.live):
                local = np.arange(seg.n_docs) if live is None else np.flatnonzero(live)
                for start in range(0, len(local), BLOCK):
                    part = local[start:start + BLOCK]
                    docs = seg.chunks(part)
                    positions, counts = seg.token_ranges(part)
                    w.add_encoded([d["id"] for d in docs], seg.codes[positions], seg.residuals[positions],
                                  counts.tolist(), [d["text"] for d in docs], [d["metadata"] for d in docs],
                                  dense=None if seg.dense is None else np.asarray(seg.dense[part]))
            w.set_user_data(dict(m.user_data))
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)  # nothing of it was ever a complete index
        raise
    return sharded
