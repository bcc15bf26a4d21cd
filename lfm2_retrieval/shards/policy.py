"""How a search treats shards that do not answer: a timeout, then an error or partial results.

    with shard_policy(timeout_s=2.0, allow_partial=True) as policy:
        hits = engine.search(["a question"])      # shards slower than 2 s are left out
    policy.missing                                # ["shard-003"]: the answer is partial

A context variable, so that the HTTP API sets one per request and every search below it, in
any thread it hands work to (contextvars are copied), follows it. Without one, a search waits
for every shard.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field


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


def current_policy() -> ShardPolicy | None:
    return _POLICY.get()


def shard_policy_for(timeout_s: float | None, allow_partial: bool) -> AbstractContextManager[ShardPolicy]:
    """The policy of one request: its own when it sets a timeout or allows partial answers,
    else the one already in force (a caller's `shard_policy` block), else waiting for all."""
    if timeout_s is not None or allow_partial:
        return shard_policy(timeout_s, allow_partial)
    return nullcontext(current_policy() or ShardPolicy())
