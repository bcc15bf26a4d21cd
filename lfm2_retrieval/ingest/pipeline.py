"""Incremental indexing of files and folders: `lfm2-search index PATH...`.

A run compares the files on disk with what the index holds. Every chunk of a file carries
the file's `source` path and `content_hash` (of its bytes and of the settings that shape its
chunks), so a run re-indexes only new and changed files and removes the chunks of files that
are gone. Work is committed in batches of whole files: a file's old chunks are deleted and its
new ones added in the same commit. A run killed at any moment (Ctrl-C, kill -9) therefore
leaves every file either fully old or fully new, and the next run finishes the job.
"""

from __future__ import annotations

import fnmatch
import hashlib
import itertools
import os
import stat
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..engine import RESERVED_METADATA, PreparedChunk, SearchEngine, TextDocument, WriteSession
from ..errors import IndexLockedError
from .readers import READERS_VERSION, SUPPORTED_SUFFIXES, RecordFields, UnreadableFile, read_file

# Files are read whole; anything larger is almost never a document and is skipped.
MAX_FILE_BYTES = 256 << 20


@dataclass
class IngestOptions:
    include: list[str] = field(default_factory=list)  # fnmatch patterns on paths relative to a root
    exclude: list[str] = field(default_factory=list)
    fields: RecordFields = field(default_factory=RecordFields)
    commit_every_seconds: float = 300.0  # at most this much encoding is lost to a crash
    encode_batch_chunks: int = 256  # chunks of several files are encoded together
    max_file_bytes: int = MAX_FILE_BYTES


@dataclass
class IngestReport:
    files_found: int = 0
    files_indexed: int = 0
    files_unchanged: int = 0
    files_removed: int = 0
    chunks_added: int = 0
    chunks_removed: int = 0
    tokens: int = 0
    seconds: float = 0.0
    commits: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    warnings: list[tuple[str, str]] = field(default_factory=list)
    unsupported: Counter = field(default_factory=Counter)  # suffix -> files ignored
    interrupted: bool = False

    def as_dict(self) -> dict:
        return {**{k: v for k, v in self.__dict__.items() if k not in ("skipped", "warnings", "unsupported")},
                "skipped": [{"path": p, "reason": r} for p, r in self.skipped],
                "warnings": [{"path": p, "warning": w} for p, w in self.warnings],
                "unsupported": dict(self.unsupported)}


@dataclass
class _Existing:
    content_hash: str | None
    chunk_ids: list[str]


@dataclass
class _FileWork:
    path: Path
    source: str
    chunks: Iterator[PreparedChunk]  # made as they are consumed: a file's chunks are never all in memory


class _Staging:
    """Chunks on their way into a writing session, encoded `size` at a time: memory holds at most
    one batch of chunks and their vectors, whatever the size of the files they come from."""

    def __init__(self, ingestor: "Ingestor", session: WriteSession, report: IngestReport, size: int) -> None:
        self.ingestor, self.session, self.report, self.size = ingestor, session, report, size
        self.chunks: list[PreparedChunk] = []
        self.files_done = 0  # files whose every chunk is staged or pending, since the last flush

    def add(self, chunk: PreparedChunk) -> None:
        self.chunks.append(chunk)
        if len(self.chunks) >= self.size:
            self.flush()

    def flush(self) -> None:
        if not self.chunks and not self.files_done:
            return
        chunks, self.chunks = self.chunks, []
        if chunks:
            self.session.add(chunks, self.ingestor.engine.encode_chunks(chunks))
        tokens = sum(c.n_tokens for c in chunks)
        self.report.chunks_added += len(chunks)
        self.report.tokens += tokens
        self.ingestor.on_progress("files", {"files": self.files_done, "chunks": len(chunks), "tokens": tokens})
        self.files_done = 0


def source_name(path: Path) -> str:
    """A file's identity in the index: its absolute POSIX path."""
    return Path(os.path.abspath(path)).as_posix()


class Ingestor:
    def __init__(self, engine: SearchEngine, options: IngestOptions | None = None,
                 on_progress: Callable[[str, dict], None] | None = None) -> None:
        self.engine = engine
        self.options = options or IngestOptions()
        self.on_progress = on_progress or (lambda event, info: None)
        # A change of any setting that shapes chunks (or of how files are read) re-indexes every file.
        chunking = engine.chunking
        self.settings = (f"{chunking.max_tokens}/{chunking.overlap}/{chunking.smallest}/"
                         f"{self.options.fields.fingerprint()}/readers-{READERS_VERSION}")

    # ------------------------------------------------------------------ finding files
    def scan(self, paths: Sequence[str | os.PathLike], report: IngestReport) -> list[Path]:
        files: dict[Path, None] = {}
        for root in map(Path, paths):
            if root.is_file():
                files[root] = None
            elif root.is_dir():
                for path in self._walk(root, report):
                    files[path] = None
            else:
                raise FileNotFoundError(f"{root} does not exist")
        return list(files)

    def _walk(self, root: Path, report: IngestReport):
        # Depth first with a stack of its own, in os.walk's order (files, then sub-folders, sorted):
        # Python 3.11's os.walk recurses and fails on folders nested ~1,000 deep. Symlinked
        # folders are not followed: no loops.
        stack = [root]
        while stack:
            folder = stack.pop()
            try:
                with os.scandir(folder) as it:
                    # (name, kind): 1 a folder, 2 a link to a folder (skipped as os.walk does), 0 else
                    entries = sorted((e.name, 1 if e.is_dir(follow_symlinks=False) else 2 if e.is_dir() else 0)
                                     for e in it)
            except OSError as exc:
                report.skipped.append((str(folder), f"folder cannot be read: {exc.strerror or exc}"))
                continue
            stack.extend(folder / n for n, kind in reversed(entries) if kind == 1 and not n.startswith("."))
            for name in (n for n, kind in entries if kind == 0):
                if name.startswith("."):
                    continue
                path = folder / name
                rel = path.relative_to(root).as_posix()
                if self.options.include and not any(fnmatch.fnmatch(rel, p) for p in self.options.include):
                    continue
                if any(fnmatch.fnmatch(rel, p) for p in self.options.exclude):
                    continue
                if path.suffix.lower() not in SUPPORTED_SUFFIXES:
                    report.unsupported[path.suffix.lower() or "(none)"] += 1
                    continue
                why = _not_indexable(path, root)
                if why:
                    report.skipped.append((str(path), why))
                    continue
                yield path

    def _existing(self) -> dict[str, _Existing]:
        """What the index holds per source file (chunks written by ingestion only)."""
        out: dict[str, _Existing] = {}
        for cid, meta in self.engine.chunk_metadata(["source", "content_hash"]):
            if meta["content_hash"] is None or meta["source"] is None:
                continue  # added through the API or Python, not from a file
            entry = out.setdefault(meta["source"], _Existing(meta["content_hash"], []))
            entry.chunk_ids.append(cid)
            if entry.content_hash != meta["content_hash"]:
                entry.content_hash = None  # mixed versions (never committed so): redo it
        return out

    def _plan(self, digests: dict[Path, str], files: list[Path], roots: list[str]):
        """(existing, files to index, sources to remove, files unchanged) against the index now."""
        existing = self._existing()
        on_disk = {source_name(f) for f in files}
        removed = [s for s in existing if s not in on_disk and any(_under(s, r) for r in roots)]
        todo, unchanged = [], 0
        for path, digest in digests.items():
            known = existing.get(source_name(path))
            if known is not None and known.content_hash == digest:
                unchanged += 1
            else:
                todo.append(path)
        return existing, todo, removed, unchanged

    # ------------------------------------------------------------------ the run
    def run(self, paths: Sequence[str | os.PathLike]) -> IngestReport:
        report = IngestReport()
        started = time.monotonic()
        files = self.scan(paths, report)
        report.files_found = len(files)
        self.engine.refresh()
        seen_commit = self.engine.commit
        roots = [source_name(Path(p)) for p in paths]
        digests = {path: d for path in files if (d := self._hash_file(path, report)) is not None}
        existing, todo, removed, unchanged = self._plan(digests, files, roots)
        self.on_progress("start", {"files": len(todo), "unchanged": unchanged, "removed": len(removed)})
        if not todo and not removed:
            report.files_unchanged = unchanged
            report.seconds = time.monotonic() - started
            return report  # nothing changed: no commit
        expected_tokens = sum(path.stat().st_size for path in todo if path.exists()) // 4
        session: WriteSession | None = None
        try:
            session = self.engine.writing(expected_tokens=expected_tokens, timeout=0.0, merge=False)
            if self.engine.commit != seen_commit:
                # Another run committed while we read: plan again from what the lock now shows
                # (else its files would be added twice: "ids already exist").
                existing, todo, removed, unchanged = self._plan(digests, files, roots)
            report.files_unchanged = unchanged
            if removed:
                ids = [cid for s in removed for cid in existing[s].chunk_ids]
                report.chunks_removed += session.delete_chunks(ids)
                report.files_removed = len(removed)
            last_commit = time.monotonic()
            staging = _Staging(self, session, report, self.options.encode_batch_chunks)
            for path in todo:
                work = self._prepare_file(path, report)
                if work is None:
                    self.on_progress("files", {"files": 1, "chunks": 0, "tokens": 0})
                else:
                    self._stage_file(staging, work, existing, report)
                # Commits fall between files only: a file is always wholly old or wholly new.
                if time.monotonic() - last_commit >= self.options.commit_every_seconds and (staging.chunks or session.has_changes):
                    staging.flush()
                    self._commit(session, report)
                    session = self.engine.writing(expected_tokens=expected_tokens, timeout=0.0, merge=False)
                    staging = _Staging(self, session, report, self.options.encode_batch_chunks)
                    last_commit = time.monotonic()
            staging.flush()
            self._commit(session, report)
            session = None
            self._merge_segments()
        except KeyboardInterrupt:
            report.interrupted = True  # staged files are redone by the next run
            if session is not None:
                session.abort()
        except BaseException:
            if session is not None:
                session.abort()
            raise
        report.seconds = time.monotonic() - started
        return report

    def _merge_segments(self) -> None:
        """Runs that commit often (or many runs over time) leave many segments: merge them by the
        tiered policy while no other writer is busy (if one is, its own next write will)."""
        try:
            self.engine.merge_segments(timeout=0.0)
        except IndexLockedError:
            pass

    @staticmethod
    def _commit(session: WriteSession, report: IngestReport) -> None:
        if session.has_changes:
            session.commit()
            report.commits += 1
        else:
            session.abort()  # nothing staged (e.g. only unreadable files): no empty commit

    def _hash_file(self, path: Path, report: IngestReport) -> str | None:
        try:
            size = path.stat().st_size
            if size > self.options.max_file_bytes:
                report.skipped.append((str(path), f"larger than {self.options.max_file_bytes >> 20} MB"))
                return None
            data = path.read_bytes()
        except OSError as exc:
            report.skipped.append((str(path), f"cannot be read: {exc.strerror or exc}"))
            return None
        return self._digest(data)

    def _digest(self, data: bytes) -> str:
        return hashlib.sha256(self.settings.encode() + b"\0" + data).hexdigest()[:32]

    def _prepare_file(self, path: Path, report: IngestReport) -> _FileWork | None:
        try:
            data = path.read_bytes()
            result = read_file(path, data, self.options.fields)
        except UnreadableFile as exc:
            report.skipped.append((str(path), str(exc)))
            return None
        except OSError as exc:
            report.skipped.append((str(path), f"cannot be read: {exc.strerror or exc}"))
            return None
        except (ValueError, RecursionError) as exc:  # a reader met input it cannot take: this file only
            report.skipped.append((str(path), f"cannot be read ({type(exc).__name__}): {str(exc)[:200]}"))
            return None
        report.warnings.extend((str(path), w) for w in result.warnings)
        source = source_name(path)
        digest = self._digest(data)  # the bytes actually indexed, even if the file just changed
        docs = []
        for text in result.texts:
            doc_id = source if text.record_id is None else f"{source}#{text.record_id}"
            meta = {**{k: v for k, v in text.metadata.items() if k not in RESERVED_METADATA},
                    "source": source, "content_hash": digest}
            if text.record_id is not None:
                meta["record_id"] = text.record_id
            docs.append(TextDocument(doc_id, text.text, meta, title=text.title, page_starts=text.page_starts,
                                     sections=text.sections))
        chunks = (chunk for doc in docs for chunk in self.engine.iter_prepare(doc))
        first = next(chunks, None)
        if first is None:
            report.skipped.append((str(path), "no text"))
            return None  # its chunks from before, if any, stay as they were
        return _FileWork(path, source, itertools.chain([first], chunks))

    @staticmethod
    def _stage_file(staging: _Staging, work: _FileWork, existing: dict[str, _Existing], report: IngestReport) -> None:
        """A file into the session: its old chunks out, then its new chunks in, batch by batch."""
        if work.source in existing:
            report.chunks_removed += staging.session.delete_chunks(existing.pop(work.source).chunk_ids)
        for chunk in work.chunks:
            staging.add(chunk)
        staging.files_done += 1
        report.files_indexed += 1


def _not_indexable(path: Path, root: Path) -> str | None:
    """Why a file found in a folder is not read, or None. A FIFO would block the reader forever
    and a device (a link to /dev/zero) never ends; a link out of the folder would index what
    the user did not point at. A name that is not UTF-8 cannot become an id (ids are text)."""
    try:
        str(path).encode("utf-8")
    except UnicodeEncodeError:
        return "its name is not valid UTF-8 (rename the file to index it)"
    try:
        mode = path.stat().st_mode  # follows links: what reading would open
    except OSError as exc:
        return f"cannot be read: {exc.strerror or exc}"
    if not stat.S_ISREG(mode):
        return "not a regular file (a FIFO, socket or device, or a link to one)"
    if path.is_symlink() and not path.resolve().is_relative_to(root.resolve()):
        return f"a symbolic link to {path.resolve()}, outside {root}"
    return None


def _under(source: str, root: str) -> bool:
    return source == root or source.startswith(root.rstrip("/") + "/")
