"""One commit of an index, opened: its manifest, codec, segments and deletions, frozen.

A search runs on a Snapshot and never sees a later commit half-way; `open_snapshot` does the
cheap integrity checks of opening (sizes, checksummed headers, the bounds the kernels rely on),
so a damaged file is named when the index opens, not read by compiled code.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import IndexDamagedError, IndexFolderError, raise_if_resource_error
from .codec import ResidualCodec
from .integrity import read_segment_info, segment_sizes_problem, segment_structure_problem
from .manifest import Manifest, SegmentEntry
from .segment import Segment
from .storage import load_npy


@dataclass
class Hit:
    id: str
    score: float
    text: str
    metadata: dict[str, Any]


@dataclass
class Snapshot:
    """Everything a search needs, frozen at one commit."""

    manifest: Manifest
    codec: ResidualCodec | None
    segments: list[Segment]
    live: list[np.ndarray | None]  # per segment: False where deleted (None: nothing deleted)

    @property
    def commit(self) -> int:
        return self.manifest.commit


def open_codec(path: Path, manifest: Manifest) -> ResidualCodec:
    """The commit's codec, its files' sizes checked against the manifest."""
    folder = path / manifest.codec
    for rel, (size, _) in manifest.codec_files.items():
        if not (folder / rel).is_file() or (folder / rel).stat().st_size != size:
            raise IndexDamagedError(path, f"{manifest.codec}/{rel}", "missing or not the size written")
    try:
        return ResidualCodec.load(folder)
    except FileNotFoundError:
        raise
    except Exception as exc:
        raise_if_resource_error(exc, path)  # out of descriptors or memory is not damage
        raise IndexDamagedError(path, manifest.codec, f"does not load ({type(exc).__name__})") from None


def open_segment(path: Path, entry: SegmentEntry, codec: ResidualCodec | None) -> Segment:
    """A segment, after the cheap checks: its segment.json against the manifest's checksum,
    every file's size, and the invariants the search kernels rely on."""
    folder = path / "segments" / entry.name
    where = f"segments/{entry.name}"
    try:
        read_segment_info(folder, entry.checksum)
        seg = Segment(folder)
    except FileNotFoundError:
        raise  # a writer removed an older commit's files: the caller reads the manifest again
    except Exception as exc:
        raise_if_resource_error(exc, path)
        raise IndexDamagedError(path, where, f"does not open ({type(exc).__name__}: {str(exc)[:120]})") from None
    problem = segment_sizes_problem(folder, seg.info) or segment_structure_problem(
        seg, codec.num_centroids if codec else None)
    if problem:
        raise IndexDamagedError(path, problem.part, problem.problem)
    return seg


def open_snapshot(path: Path, manifest: Manifest, segment_cache: dict[str, Segment],
                  codec_cache: dict[str, ResidualCodec]) -> Snapshot:
    """The snapshot `manifest` names, reusing the already opened segments and codec of the caches
    (which are updated to hold exactly this snapshot's)."""
    codec = None
    if manifest.codec:
        codec = codec_cache.get(manifest.codec)
        if codec is None:
            codec = open_codec(path, manifest)
            codec_cache.clear()
            codec_cache[manifest.codec] = codec
    segments = [segment_cache.get(entry.name) or open_segment(path, entry, codec) for entry in manifest.segments]
    segment_cache.clear()
    segment_cache.update((s.name, s) for s in segments)
    tombstones = np.empty(0, np.int64)
    if manifest.tombstones:
        try:
            tombstones = load_npy(path / manifest.tombstones)
        except FileNotFoundError:
            raise
        except Exception as exc:
            raise_if_resource_error(exc, path)
            raise IndexDamagedError(path, manifest.tombstones, f"does not load ({type(exc).__name__})") from None
    live = [None if len(tombstones) == 0 else ~np.isin(s.internal_ids, tombstones) for s in segments]
    return Snapshot(manifest, codec, segments, live)


def load_snapshot(path: Path, segment_cache: dict[str, Segment], codec_cache: dict[str, ResidualCodec]) -> Snapshot:
    """The newest commit's snapshot. A writer may delete the files of an older commit between our
    reading the manifest and opening them; the manifest then names newer files, so read it again.
    A file missing while the manifest stays at the same commit is damage, and is named."""
    missing: tuple[int, str] | None = None
    for attempt in range(10):
        manifest = Manifest.read(path)
        try:
            return open_snapshot(path, manifest, segment_cache, codec_cache)
        except FileNotFoundError as exc:
            gone = (manifest.commit, str(exc.filename or exc))
            if gone == missing:  # the same file of the same commit, twice: it is not coming back
                raise IndexDamagedError(path, _relative(path, gone[1]), "missing (the commit names it)") from None
            missing = gone
            time.sleep(0.01 * (attempt + 1))
    raise IndexFolderError(f"could not open a consistent snapshot of {path}: it changed at every try")


def _relative(path: Path, filename: str) -> str:
    try:
        return str(Path(filename).relative_to(path))
    except ValueError:
        return filename
