"""Integrity of an index folder: checksums written with every file, checked cheaply at open and
fully by `lfm2-search check`, and a repair that drops what is damaged by a new commit.

As Lucene's segment footers: each segment's `segment.json` records the size and CRC32 of every
file of the segment, and the manifest records the CRC32 of each `segment.json`, of the codec's
files and of the tombstones, so one chain of checksums starts at the manifest (itself replaced
atomically). Opening checks sizes and the invariants the compiled search kernels rely on (codes
below the number of centroids, offsets monotone and in range): a damaged file is refused with an
error that names it, instead of being read out of bounds. `check(full=True)` also recomputes
every checksum and decodes every inverted-file list.
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import raise_if_resource_error

CHUNK_BYTES = 1 << 20


def crc32_of(path: Path) -> int:
    crc = 0
    with open(path, "rb") as f:
        while block := f.read(CHUNK_BYTES):
            crc = zlib.crc32(block, crc)
    return crc


def folder_checksums(folder: Path, exclude: tuple[str, ...] = ()) -> dict[str, list[int]]:
    """relative path -> [size, CRC32] of every file under `folder`."""
    out = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        rel = path.relative_to(folder).as_posix()
        if rel not in exclude:
            out[rel] = [path.stat().st_size, crc32_of(path)]
    return out


@dataclass
class Problem:
    part: str  # "segments/seg-000003/codes.bin", "codec-000001", "manifest.json"
    problem: str


@dataclass
class CheckReport:
    commit: int
    checked: list[str] = field(default_factory=list)  # parts found sound
    problems: list[Problem] = field(default_factory=list)
    full: bool = False

    @property
    def damaged_segments(self) -> list[str]:
        names = []
        for p in self.problems:
            if p.part.startswith("segments/"):
                name = p.part.split("/")[1]
                if name not in names:
                    names.append(name)
        return names

    def as_dict(self) -> dict[str, Any]:
        return {"commit": self.commit, "full": self.full, "ok": not self.problems, "checked": self.checked,
                "problems": [{"part": p.part, "problem": p.problem} for p in self.problems]}


# ---------------------------------------------------------------------- segments
def segment_sizes_problem(folder: Path, info: dict[str, Any]) -> Problem | None:
    """Missing files and wrong sizes (cheap: one stat a file)."""
    for rel, (size, _) in info.get("files", {}).items():
        path = folder / rel
        if not path.is_file():
            return Problem(f"segments/{folder.name}/{rel}", "missing")
        if path.stat().st_size != size:
            return Problem(f"segments/{folder.name}/{rel}", f"{path.stat().st_size} bytes, {size} written")
    return None


def segment_structure_problem(seg, num_centroids: int | None) -> Problem | None:
    """The invariants search relies on, checked once when a segment is opened: vectorised passes
    over offsets and codes (about a millisecond per million tokens), never per token at search."""
    where = f"segments/{seg.folder.name}"
    offsets = np.asarray(seg.doc_offsets)
    if len(offsets) != seg.n_docs + 1 or (len(offsets) and int(offsets[0]) != 0) \
            or int(offsets[-1]) != seg.n_tokens or np.any(np.diff(offsets.astype(np.int64)) < 0):
        return Problem(f"{where}/doc_offsets.npy", "token offsets are not a monotone cover of the segment's tokens")
    records = np.asarray(seg.record_offsets)
    if len(records) != seg.n_docs + 1 + seg.n_shared or np.any(np.diff(records.astype(np.int64)) < 0):
        return Problem(f"{where}/record_offsets.npy",
                       "record offsets are not monotone, one per chunk and one per shared metadata row")
    if num_centroids is not None and seg.n_tokens and int(np.max(seg.codes)) >= num_centroids:
        return Problem(f"{where}/codes.bin", f"a token code is at least the number of centroids ({num_centroids})")
    if not seg._legacy_ivf:
        index = np.asarray(seg.ivf_index)
        if index.ndim != 2 or np.any(np.diff(index.astype(np.int64), axis=0) < 0):
            return Problem(f"{where}/ivf_index.npy", "inverted-file positions are not monotone")
    return None


def check_segment_fully(seg, info: dict[str, Any]) -> list[Problem]:
    """Every checksum, every record, every inverted-file list, unique ids."""
    where = f"segments/{seg.folder.name}"
    problems = []
    for rel, (size, crc) in info.get("files", {}).items():
        path = seg.folder / rel
        if not path.is_file():
            problems.append(Problem(f"{where}/{rel}", "missing"))
        elif path.stat().st_size != size or crc32_of(path) != crc:
            problems.append(Problem(f"{where}/{rel}", "checksum mismatch (the bytes changed after they were written)"))
    if problems:
        return problems
    try:
        ids = seg.external_ids
        if len(ids) != seg.n_docs or len(set(ids)) != len(ids):
            problems.append(Problem(f"{where}/docs.parquet", "chunk ids are not one per chunk, unique"))
        seg.chunks(range(seg.n_docs))
        if not seg._legacy_ivf:
            docs, _ = seg.ivf_lookup(np.arange(seg.ivf_index.shape[0] - 1))
            if len(docs) and (docs.min() < 0 or docs.max() >= max(seg.n_docs, 1)):
                problems.append(Problem(f"{where}/ivf_lists.npy", "an inverted-file list names a chunk out of range"))
        seg.lexical  # noqa: B018 - loads the BM25 files
    except Exception as exc:
        raise_if_resource_error(exc, seg.folder)  # except running out of descriptors or memory
        problems.append(Problem(where, f"unreadable: {type(exc).__name__}: {str(exc)[:200]}"))
    return problems


def read_segment_info(folder: Path, expected_crc: int | None) -> dict[str, Any]:
    path = folder / "segment.json"
    data = path.read_bytes()
    if expected_crc is not None and zlib.crc32(data) != expected_crc:
        raise ValueError("segment.json checksum mismatch")
    return json.loads(data.decode("utf-8"))
