"""The shard map: `shards.json`, the one file that says what a sharded index's current commit is.

It names the shard folders (each an ordinary index, with its own manifest and commits), how a
chunk is placed (PLACEMENT: a stable hash of its document id modulo the number of shards, so a
document's chunks live together and an upsert or a delete touches one shard), the fingerprint
of the codec every shard shares (one codec: scores of different shards compare, and a sharded
search equals the unsharded one), and the commit of each shard that belongs to the current
sharded commit. A sharded commit is two-phase: every changed shard prepares its commit, then
this file is replaced atomically (the commit point), then the shards publish theirs.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import IndexDamagedError, IndexFolderError
from ..index.storage import write_json_atomic

SHARD_MAP = "shards.json"
SHARD_MAP_FORMAT = 1
PLACEMENT = "blake2b-64(doc_id) mod shards"


def is_sharded(path: str | Path) -> bool:
    return (Path(path) / SHARD_MAP).exists()


def shard_of(key: str, n_shards: int) -> int:
    """The shard of a document id: the same on every machine and in every release."""
    digest = hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "little") % n_shards


def codec_fingerprint(codec_files: dict[str, list[int]]) -> str | None:
    """A codec's identity from its files' sizes and checksums (the manifest's codec_files)."""
    if not codec_files:
        return None
    data = json.dumps(sorted(codec_files.items())).encode()
    return hashlib.blake2b(data, digest_size=8).hexdigest()


@dataclass
class ShardMap:
    shards: list[str]  # folder names, relative to the sharded index
    dim: int
    nbits: int
    commit: int = 0
    shard_commits: list[int] = field(default_factory=list)  # each shard's commit in this sharded commit
    codec: str | None = None  # codec_fingerprint of the codec every shard holds (None until the first chunks)
    model_fingerprint: str | None = None
    model_source: str | None = None
    user_data: dict[str, Any] = field(default_factory=dict)  # the application's, as Manifest.user_data
    placement: str = PLACEMENT
    format_version: int = SHARD_MAP_FORMAT

    @property
    def n_shards(self) -> int:
        return len(self.shards)

    def shard_of(self, key: str) -> int:
        return shard_of(key, self.n_shards)

    @classmethod
    def read(cls, path: Path) -> "ShardMap":
        try:
            raw = json.loads((path / SHARD_MAP).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise IndexFolderError(f"no sharded index at {path} (no {SHARD_MAP})") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise IndexDamagedError(path, SHARD_MAP, f"not valid JSON ({type(exc).__name__})") from None
        if raw.get("format_version") != SHARD_MAP_FORMAT:
            raise IndexFolderError(f"shard map format {raw.get('format_version')} is not supported")
        if raw.get("placement") != PLACEMENT:
            raise IndexFolderError(f"shard placement {raw.get('placement')!r} is not supported")
        try:
            return cls(**raw)
        except TypeError as exc:
            raise IndexDamagedError(path, SHARD_MAP, f"a field is missing or malformed ({exc})") from None

    def write(self, path: Path) -> None:
        write_json_atomic(path / SHARD_MAP, asdict(self))
