"""The manifest: the one file that says what an index's current commit is.

`manifest.json` names the codec, the segments, the deletions and the counts of one complete
snapshot. Writers build a new Manifest and replace the file atomically (storage.write_json_atomic);
readers load it and open exactly the files it names.

Each commit is also kept as a commit point, `commits/manifest-NNNNNN.json` (the last
KEEP_COMMIT_POINTS), written and made durable before manifest.json is replaced, as Lucene keeps
`segments_N`: when manifest.json itself is damaged, `check --repair` restores the newest commit
point whose files verify (checking.restore_commit_point), and says which commits, if any, were lost.

On disk, format 2 (and 1) call a stored row a "document" (`counts.documents`, a segment's
`n_docs`); in code a row is a chunk. The names on disk are kept, so that indexes of every
release stay readable by every other release that knows their format.
"""

from __future__ import annotations

import copy
import json
import os
import re
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from ..errors import IndexDamagedError, IndexFolderError
from .analysis import Analysis
from .dense import DenseSlot
from .storage import RenameDone, write_json_atomic

# 2: inverted-file lists Elias-Fano coded (segment.py). 3: a document's metadata stored once per
# segment, not in each chunk (segment.py, "shared metadata"). Older segments read unchanged; a
# commit marks the index with the newest format, so an older version refuses it clearly
# instead of misreading its files. 4: the dense slot (`dense` here, dense.bin in segments), which
# an older version would drop when it merges segments.
FORMAT_VERSION = 4
READABLE_FORMATS = (1, 2, 3, 4)
MANIFEST = "manifest.json"
# A commit prepared but not yet published (IndexWriter.commit(publish=False)): the two phases
# of a commit that spans several indexes, the shards of one sharded index (shards/).
MANIFEST_NEXT = "manifest.next.json"
COMMITS_DIR = "commits"
KEEP_COMMIT_POINTS = 3
_COMMIT_POINT = re.compile(r"^manifest-(\d{6,})\.json$")


@dataclass
class Counts:
    chunks: int = 0  # live rows
    tokens: int = 0  # their token vectors
    deleted: int = 0  # rows deleted but still in segments (until a merge or optimize drops them)

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> "Counts":
        return cls(chunks=raw.get("documents", 0), tokens=raw.get("tokens", 0), deleted=raw.get("deleted", 0))

    def to_json(self) -> dict[str, int]:
        return {"documents": self.chunks, "tokens": self.tokens, "deleted": self.deleted}


@dataclass
class SegmentEntry:
    name: str
    n_chunks: int
    n_tokens: int
    checksum: int | None = None  # CRC32 of its segment.json (integrity.py)

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> "SegmentEntry":
        return cls(raw["name"], raw["n_docs"], raw["n_tokens"], raw.get("checksum"))

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "n_docs": self.n_chunks, "n_tokens": self.n_tokens, "checksum": self.checksum}


@dataclass
class Manifest:
    dim: int
    nbits: int
    format_version: int = FORMAT_VERSION
    commit: int = 0
    model_fingerprint: str | None = None  # vectors of another model are refused
    model_source: str | None = None  # where that model comes from, so tools can load it unasked
    num_centroids: int | None = None  # fixed by the creator, else chosen from the first build's size
    codec: str | None = None  # folder of the codec (None until the first chunks arrive)
    codec_files: dict[str, list[int]] = field(default_factory=dict)  # relative path -> [size, CRC32]
    segments: list[SegmentEntry] = field(default_factory=list)
    tombstones: str | None = None  # .npy of deleted internal ids
    tombstones_checksum: int | None = None
    next_internal_id: int = 0
    next_file: int = 1
    counts: Counts = field(default_factory=Counts)
    updated_at: float = field(default_factory=time.time)
    # What the application records with a commit, atomically with it (Lucene's commit user
    # data): e.g. ingestion's list of files committed only in part. Carried to later commits.
    user_data: dict[str, Any] = field(default_factory=dict)
    # The dense slot (index/dense.py DenseSlot as JSON): None for an index of token vectors only.
    dense: dict[str, Any] | None = None
    # How new segments analyse text for BM25 (index/analysis.py Analysis as JSON): None for an
    # index made before analysis existed (plain words), until `optimize` re-analyses it.
    lexical: dict[str, Any] | None = None

    @property
    def dense_slot(self) -> DenseSlot | None:
        return DenseSlot.from_json(self.dense)

    @property
    def analysis(self) -> Analysis:
        return Analysis.from_json(self.lexical)

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> "Manifest":
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in raw.items() if k in known}
        values["counts"] = Counts.from_json(raw.get("counts", {}))
        values["segments"] = [SegmentEntry.from_json(s) for s in raw.get("segments", [])]
        values["codec_files"] = dict(raw.get("codec_files") or {})
        values["user_data"] = dict(raw.get("user_data") or {})
        return cls(**values)

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["counts"] = self.counts.to_json()
        out["segments"] = [s.to_json() for s in self.segments]
        return out

    def copy(self) -> "Manifest":
        return copy.deepcopy(self)

    @classmethod
    def read(cls, index_path: Path, name: str = MANIFEST) -> "Manifest":
        """The current commit's manifest (or the prepared one, `name` MANIFEST_NEXT); a clear
        error when it is missing, damaged or too new."""
        try:
            raw = json.loads((index_path / name).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise IndexFolderError(f"no index at {index_path}") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise IndexDamagedError(index_path, MANIFEST, f"not valid JSON ({type(exc).__name__})") from None
        if raw.get("format_version") not in READABLE_FORMATS:
            raise IndexFolderError(f"index format {raw.get('format_version')} is not supported "
                                   f"(this version reads formats {', '.join(map(str, READABLE_FORMATS))})")
        try:
            return cls.from_json(raw)
        except (KeyError, TypeError) as exc:
            raise IndexDamagedError(index_path, MANIFEST, f"a field is missing or malformed ({exc})") from None

    def write(self, index_path: Path, name: str = MANIFEST) -> None:
        """Publish this manifest as `name` (manifest.json, or MANIFEST_NEXT for a prepared
        commit), its commit point written and durable first. The rename of `name` is the commit
        point: storage.RenameDone says it happened although a later step failed."""
        folder = index_path / COMMITS_DIR
        folder.mkdir(exist_ok=True)
        try:
            write_json_atomic(folder / commit_point_name(self.commit), self.to_json())
        except RenameDone:
            pass  # the commit point is there; the folder is synced by the next commit's
        write_json_atomic(index_path / name, self.to_json())


def commit_point_name(commit: int) -> str:
    return f"manifest-{commit:06d}.json"


def commit_points(index_path: Path) -> list[tuple[int, Path]]:
    """(commit, file) of every commit point kept in the index, newest first."""
    try:
        names = os.listdir(index_path / COMMITS_DIR)
    except FileNotFoundError:
        return []
    found = [(int(m.group(1)), index_path / COMMITS_DIR / n) for n in names if (m := _COMMIT_POINT.match(n))]
    return sorted(found, reverse=True)
