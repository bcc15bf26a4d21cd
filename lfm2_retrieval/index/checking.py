"""`lfm2-search check` and `check --repair`: prove an index sound, or drop what is damaged.

check_index verifies the current commit: the cheap checks of opening and, with `full`, every
checksum, record, inverted-file list and BM25 index, then the counts. repair_index makes a new
commit without the damaged parts; it never deletes anything silently (it reports what it
dropped and which source files the next `lfm2-search index` run will read again).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import IndexDamagedError, IndexFolderError, raise_if_resource_error
from .integrity import CheckReport, Problem, check_segment_fully, crc32_of
from .manifest import MANIFEST, Counts, Manifest, commit_points
from .snapshot import open_codec, open_segment
from .storage import WriterLock, load_npy
from .writer import collect_garbage


def check_index(path: str | Path, full: bool = False) -> CheckReport:
    """Every part of the index's current commit, checked: the cheap checks of opening, and with
    `full` every checksum, record, inverted-file list and BM25 index; then the counts."""
    path = Path(path)
    try:
        manifest = Manifest.read(path)
    except IndexDamagedError as exc:
        report = CheckReport(commit=-1, full=full)
        report.problems.append(Problem(exc.part, exc.problem + _fallback_note(path)))
        return report
    except IndexFolderError:
        if not (path / MANIFEST).exists() and commit_points(path):
            report = CheckReport(commit=-1, full=full)
            report.problems.append(Problem(MANIFEST, "missing" + _fallback_note(path)))
            return report
        raise
    return check_manifest(path, manifest, full)


def _fallback_note(path: Path) -> str:
    points = commit_points(path)
    if not points:
        return " (no commit points are kept: an index written before they were)"
    return f" ({len(points)} commit points kept, newest {points[0][0]}: --repair restores the newest that verifies)"


def check_manifest(path: Path, manifest: Manifest, full: bool) -> CheckReport:
    """The check of the commit that `manifest` describes (the current one, or a commit point)."""
    report = CheckReport(commit=manifest.commit, full=full)
    codec = None
    if manifest.codec:
        try:
            codec = open_codec(path, manifest)
            bad = [rel for rel, (_, crc) in manifest.codec_files.items()
                   if full and crc32_of(path / manifest.codec / rel) != crc]
            if bad:
                raise IndexDamagedError(path, f"{manifest.codec}/{bad[0]}", "checksum mismatch")
            report.checked.append(manifest.codec)
        except IndexDamagedError as exc:
            report.problems.append(Problem(exc.part, exc.problem))
    tombstones = np.empty(0, np.int64)
    if manifest.tombstones:
        try:
            crc = manifest.tombstones_checksum
            if full and crc is not None and crc32_of(path / manifest.tombstones) != crc:
                raise ValueError("checksum mismatch")
            tombstones = load_npy(path / manifest.tombstones)
            report.checked.append(manifest.tombstones)
        except Exception as exc:
            raise_if_resource_error(exc, path)
            report.problems.append(Problem(manifest.tombstones, f"the deletions do not load ({exc})"))
    live_chunks = 0
    for entry in manifest.segments:
        try:
            seg = open_segment(path, entry, codec)
        except (IndexDamagedError, FileNotFoundError) as exc:
            report.problems.append(Problem(getattr(exc, "part", f"segments/{entry.name}"),
                                           getattr(exc, "problem", "missing")))
            continue
        problems = check_segment_fully(seg, seg.info) if full else []
        slot = manifest.dense_slot
        if slot is not None and seg.dense_dim != slot.dim:
            problems.append(Problem(f"segments/{entry.name}", f"the index keeps {slot.dim}-d dense vectors, the "
                                                              f"segment has {seg.dense_dim or 'none'}"))
        if problems:
            report.problems += problems
            continue
        report.checked.append(f"segments/{entry.name}")
        live_chunks += int(np.sum(~np.isin(seg.internal_ids, tombstones))) if len(tombstones) else seg.n_docs
    if not report.problems and live_chunks != manifest.counts.chunks:
        report.problems.append(Problem(MANIFEST, f"counts {manifest.counts.chunks} chunks, the segments "
                                                 f"hold {live_chunks}"))
    return report


def repair_index(path: str | Path, report: CheckReport, timeout: float = 10.0) -> dict[str, Any]:
    """A new commit without what `report` found damaged: damaged segments are dropped (with a
    damaged codec or deletion list, every segment: their vectors or deletions cannot be trusted),
    counts are recomputed. What was dropped is returned, with the source files it held where they
    can still be read, so the next `lfm2-search index` run indexes them again."""
    path = Path(path)
    if report.commit == -1 and any(p.part == MANIFEST for p in report.problems):
        return restore_commit_point(path, timeout)
    lock = WriterLock(path)
    lock.acquire(timeout)
    try:
        manifest = Manifest.read(path)
        if manifest.commit != report.commit:
            raise IndexFolderError(f"index {path} changed since it was checked (commit {report.commit} -> "
                                   f"{manifest.commit}); run `lfm2-search check` again")
        damaged = set(report.damaged_segments)
        everything = any(not p.part.startswith("segments/") for p in report.problems)
        keep = [] if everything else [s for s in manifest.segments if s.name not in damaged]
        dropped = [s.name for s in manifest.segments if s not in keep]
        new = manifest.copy()
        new.segments, new.commit, new.updated_at = keep, manifest.commit + 1, time.time()
        codec_ok = manifest.codec and not any(p.part.startswith(manifest.codec) for p in report.problems)
        if not codec_ok:
            new.codec, new.codec_files = None, {}
        tombstones = np.empty(0, np.int64)
        if manifest.tombstones and not everything:
            tombstones = load_npy(path / manifest.tombstones)
        elif manifest.tombstones:
            new.tombstones, new.tombstones_checksum = None, None
        codec = open_codec(path, new) if new.codec else None
        chunks = tokens = 0
        for entry in keep:
            seg = open_segment(path, entry, codec)
            live = ~np.isin(seg.internal_ids, tombstones) if len(tombstones) else np.ones(seg.n_docs, bool)
            chunks += int(live.sum())
            tokens += int(np.diff(np.asarray(seg.doc_offsets, dtype=np.int64))[live].sum())
        new.counts = Counts(chunks=chunks, tokens=tokens, deleted=manifest.counts.deleted)
        sources = _sources_of(path, dropped)
        new.write(path)
        collect_garbage(path, new)
    finally:
        lock.release()
    return {"commit": new.commit, "dropped_segments": dropped, "chunks": chunks, "sources": sources}


def restore_commit_point(path: Path, timeout: float = 10.0) -> dict[str, Any]:
    """manifest.json is damaged or gone: publish the newest commit point (manifest.py) whose
    every file verifies in full, and say which newer commits, if any, could not be restored.

    The commit point of the current commit is written before manifest.json is replaced, so a
    damaged manifest.json alone loses nothing; older commit points verify only while their files
    are still there (each commit's garbage collection removes what it no longer names)."""
    lock = WriterLock(path)
    lock.acquire(timeout)
    try:
        tried: list[str] = []
        for commit, point in commit_points(path):
            try:
                candidate = Manifest.read(point.parent, point.name)
            except (IndexDamagedError, IndexFolderError) as exc:
                tried.append(f"{point.name}: {exc}")
                continue
            problems = check_manifest(path, candidate, full=True).problems
            if problems:
                tried.append(f"{point.name}: {problems[0].part}: {problems[0].problem}")
                continue
            lost = [c for c, _ in commit_points(path) if c > commit]
            restored = candidate.copy()
            if lost:  # a new number: no reader may take it for a commit it has already seen
                restored.commit = max(lost) + 1
            restored.updated_at = time.time()
            restored.write(path)
            collect_garbage(path, restored)
            return {"commit": restored.commit, "restored_from": point.name, "lost_commits": lost,
                    "dropped_segments": [], "chunks": restored.counts.chunks, "sources": [] if not lost else None,
                    "tried": tried}
    finally:
        lock.release()
    raise IndexDamagedError(path, MANIFEST, "damaged, and no commit point verifies ("
                            + ("; ".join(tried) if tried else "none is kept") + "): build the index again")


def _sources_of(path: Path, segments: list[str]) -> list[str] | None:
    """The `source` files of the chunks in these segments (None where they cannot be read)."""
    found: set[str] = set()
    for name in segments:
        folder = path / "segments" / name
        try:
            import pyarrow.compute as pc
            import pyarrow.parquet as pq

            table = pq.read_table(folder / "docs.parquet")
            for meta in table.column("metadata").to_pylist():
                if source := json.loads(meta or "{}").get("source"):
                    found.add(source)
            if "shared" in table.column_names and pc.max(table.column("shared")).as_py() not in (None, -1):
                found.update(_shared_sources(folder, table.num_rows))
        except Exception:
            return None
    return sorted(found)


def _shared_sources(folder: Path, n_chunks: int) -> set[str]:
    """The `source` of each shared metadata row (segment.py), read from records.bin directly:
    the segment may be too damaged to open."""
    offsets = load_npy(folder / "record_offsets.npy")
    data = (folder / "records.bin").read_bytes()
    rows = (json.loads(data[int(a):int(b)]) for a, b in zip(offsets[n_chunks:-1], offsets[n_chunks + 1:]))
    return {row["source"] for row in rows if row.get("source")}
