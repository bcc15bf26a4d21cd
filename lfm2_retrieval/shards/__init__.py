"""Sharded indexes: one collection as N ordinary index folders under one shard map.

    shard_map.py  shards.json: the shards, how documents are placed (a hash of the document id),
                  the codec they share, the shard commits of the current sharded commit
    index.py      ShardedIndex: the MultiVectorIndex interface over N shards (search fans out
                  in threads and merges; commits are two-phase across shards)
    writer.py     ShardedWriter: every shard's lock, chunks routed by document, one commit
    policy.py     shards that do not answer in time: an error, or partial results
    split.py      an existing index split into N shards, codes copied as they are

A ShardedIndex is an index to everything above it: SearchEngine, the ingestion pipeline, the
HTTP API and the CLI work on it unchanged. distributed/ serves the shards on Ray.
"""

from .index import ShardedIndex, open_index
from .policy import ShardPolicy, shard_policy, shard_policy_for
from .shard_map import SHARD_MAP, ShardMap, is_sharded
from .split import split_index
from .writer import ShardedWriter

__all__ = ["SHARD_MAP", "ShardMap", "ShardPolicy", "ShardedIndex", "ShardedWriter", "is_sharded", "open_index",
           "shard_policy", "shard_policy_for", "split_index"]
