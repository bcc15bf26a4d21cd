"""Incremental indexing of files and folders: `lfm2-search index PATH...`.

A run compares the files on disk with what the index holds. Every chunk of a file carries
the file's `source` path and `content_hash` (of its bytes and of the settings that shape its
chunks), so a run re-indexes only new and changed files and removes the chunks of files that
are gone. A file's old chunks are deleted and its new ones added in the same commit, and commits
fall between files, so a run killed at any moment (Ctrl-C, kill -9) leaves every file either
fully old or fully new, and the next run finishes the job.

A long record file (JSON Lines, CSV, Parquet: read as a stream, a record at a time) may also be
committed between two of its records, every `commit_every_seconds`. Such a commit records the
file as incomplete in the commit's user data (INCOMPLETE: source -> content hash), atomically
with its chunks; the next run then resumes it after the records already stored, if its bytes
are unchanged, or reads it again from the start.
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

from ..engine import RESERVED_METADATA, PreparedChunk, SearchEngine, TextDocument, WriteSession, document_of
from ..errors import IndexLockedError
from .readers import (READERS_VERSION, STREAMED_SUFFIXES, SUPPORTED_SUFFIXES, RecordFields, SourceText,
                      UnreadableFile, stream_file)
from .sources import source_name

# Files other than record streams are read whole; anything larger is almost never a document
# and is skipped.
MAX_FILE_BYTES = 256 << 20
# The commit's user-data key of files committed in part: {source: content hash ("" = read again)}.
INCOMPLETE = "ingest.incomplete_files"


@dataclass
class IngestOptions:
    include: list[str] = field(default_factory=list)  # fnmatch patterns on paths relative to a root
    exclude: list[str] = field(default_factory=list)
    fields: RecordFields = field(default_factory=RecordFields)
    commit_every_seconds: float = 300.0  # at most this much encoding is lost to a crash (also inside a record file)
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
class _Hashed:
    digest: str
    signature: tuple[int, int]  # (size, mtime) when hashed: a file changed while read is read again


@dataclass
class _Plan:
    existing: dict[str, _Existing]
    todo: list[Path]
    removed: list[str]  # sources gone from disk
    unchanged: int
    incomplete: dict[str, str]  # as the index records it (INCOMPLETE)


@dataclass
class _FileWork:
    path: Path
    source: str
    digest: str
    # Made as they are consumed: a file's documents (records) and chunks are never all in memory.
    documents: Iterator[TextDocument]
    warnings: list[str]  # the reader's, complete once `documents` is exhausted
    resume: bool  # committed in part by an earlier run, bytes unchanged: skip its stored documents


class LocalEncoding:
    """Chunks encoded in this process by the engine's model (the default). A distributed
    encoding (distributed/encoding.py: Ray) has the same one method."""

    batch_chunks: int | None = None  # chunks staged per call (None: IngestOptions.encode_batch_chunks)

    def __init__(self, engine: SearchEngine) -> None:
        self.engine = engine

    def stage(self, session: WriteSession, chunks: Sequence[PreparedChunk]) -> None:
        vectors, dense = self.engine.encode(chunks)
        session.add(chunks, vectors, dense)


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
            self.ingestor.encoding.stage(self.session, chunks)
        tokens = sum(c.n_tokens for c in chunks)
        self.report.chunks_added += len(chunks)
        self.report.tokens += tokens
        self.ingestor.on_progress("files", {"files": self.files_done, "chunks": len(chunks), "tokens": tokens})
        self.files_done = 0


class _Writing:
    """The session ingestion writes through: committed every `commit_every_seconds` (between
    files, or between records of a long record file) and reopened, each commit recording which
    files it holds only in part."""

    def __init__(self, ingestor: "Ingestor", report: IngestReport, expected_tokens: int) -> None:
        self.ingestor, self.report, self.expected_tokens = ingestor, report, expected_tokens
        self.incomplete: dict[str, str] = {}  # set from the plan made under the lock
        self.last_commit = time.monotonic()
        self._open()

    def _open(self) -> None:
        self.session = self.ingestor.engine.writing(expected_tokens=self.expected_tokens, timeout=0.0, merge=False)
        size = self.ingestor.encoding.batch_chunks or self.ingestor.options.encode_batch_chunks
        self.staging = _Staging(self.ingestor, self.session, self.report, size)

    def due(self) -> bool:
        return (time.monotonic() - self.last_commit >= self.ingestor.options.commit_every_seconds
                and bool(self.staging.chunks or self.session.has_changes))

    def commit(self, reopen: bool) -> None:
        self.staging.flush()
        record = self.session.user_data
        record.pop(INCOMPLETE, None)
        if self.incomplete:
            record[INCOMPLETE] = dict(self.incomplete)
        self.session.set_user_data(record)
        if self.session.has_changes:
            self.session.commit()
            self.report.commits += 1
        else:
            self.session.abort()  # nothing staged (e.g. only unreadable files): no empty commit
        self.last_commit = time.monotonic()
        if reopen:
            self._open()

    def abort(self) -> None:
        self.session.abort()


class Ingestor:
    def __init__(self, engine: SearchEngine, options: IngestOptions | None = None,
                 on_progress: Callable[[str, dict], None] | None = None, encoding=None) -> None:
        """encoding: how chunks become vectors (LocalEncoding, the default, or a distributed one
        such as distributed.RayEncoding); reading, chunking and committing stay here."""
        self.engine = engine
        self.encoding = encoding or LocalEncoding(engine)
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

    def _plan(self, hashed: dict[Path, _Hashed], files: list[Path], roots: list[str]) -> _Plan:
        """What to do, against the index as it is now."""
        existing = self._existing()
        incomplete = dict(self.engine.user_data.get(INCOMPLETE) or {})
        on_disk = {source_name(f) for f in files}
        removed = [s for s in {**existing, **incomplete} if s not in on_disk and any(_under(s, r) for r in roots)]
        todo, unchanged = [], 0
        for path, h in hashed.items():
            source = source_name(path)
            known = existing.get(source)
            if known is not None and known.content_hash == h.digest and source not in incomplete:
                unchanged += 1
            else:
                todo.append(path)
        return _Plan(existing, todo, removed, unchanged, incomplete)

    # ------------------------------------------------------------------ the run
    def run(self, paths: Sequence[str | os.PathLike]) -> IngestReport:
        report = IngestReport()
        started = time.monotonic()
        files = self.scan(paths, report)
        report.files_found = len(files)
        self.engine.refresh()
        seen_commit = self.engine.commit
        roots = [source_name(Path(p)) for p in paths]
        hashed = {path: h for path in files if (h := self._hash_file(path, report)) is not None}
        plan = self._plan(hashed, files, roots)
        self.on_progress("start", {"files": len(plan.todo), "unchanged": plan.unchanged, "removed": len(plan.removed)})
        if not plan.todo and not plan.removed:
            report.files_unchanged = plan.unchanged
            report.seconds = time.monotonic() - started
            return report  # nothing changed: no commit
        expected_tokens = sum(path.stat().st_size for path in plan.todo if path.exists()) // 4
        writing: _Writing | None = None
        try:
            writing = _Writing(self, report, expected_tokens)
            if self.engine.commit != seen_commit:
                # Another run committed while we read: plan again from what the lock now shows
                # (else its files would be added twice: "ids already exist").
                plan = self._plan(hashed, files, roots)
            writing.incomplete = dict(plan.incomplete)
            report.files_unchanged = plan.unchanged
            if plan.removed:
                ids = [cid for s in plan.removed if s in plan.existing for cid in plan.existing[s].chunk_ids]
                report.chunks_removed += writing.session.delete_chunks(ids)
                report.files_removed = len(plan.removed)
                for source in plan.removed:
                    writing.incomplete.pop(source, None)
            for path in plan.todo:
                work = self._prepare_file(path, hashed[path], plan, report)
                if work is None:
                    self.on_progress("files", {"files": 1, "chunks": 0, "tokens": 0})
                else:
                    self._stage_file(writing, work, plan.existing, hashed[path], report)
                if writing.due():
                    writing.commit(reopen=True)
            writing.commit(reopen=False)
            writing = None
            self._merge_segments()
        except KeyboardInterrupt:
            report.interrupted = True  # staged files are redone (or resumed) by the next run
            if writing is not None:
                writing.abort()
        except BaseException:
            if writing is not None:
                writing.abort()
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

    def _hash_file(self, path: Path, report: IngestReport) -> _Hashed | None:
        """The file's content hash, read in blocks (a record file is never wholly in memory)."""
        try:
            info = path.stat()
            if info.st_size > self.options.max_file_bytes and path.suffix.lower() not in STREAMED_SUFFIXES:
                report.skipped.append((str(path), f"larger than {self.options.max_file_bytes >> 20} MB"))
                return None
            digest = hashlib.sha256(self.settings.encode() + b"\0")
            with open(path, "rb") as f:
                while block := f.read(1 << 20):
                    digest.update(block)
        except OSError as exc:
            report.skipped.append((str(path), f"cannot be read: {exc.strerror or exc}"))
            return None
        return _Hashed(digest.hexdigest()[:32], (info.st_size, info.st_mtime_ns))

    def _digest(self, data: bytes) -> str:
        return hashlib.sha256(self.settings.encode() + b"\0" + data).hexdigest()[:32]

    def _prepare_file(self, path: Path, hashed: _Hashed, plan: _Plan, report: IngestReport) -> _FileWork | None:
        source = source_name(path)
        try:
            if path.suffix.lower() in STREAMED_SUFFIXES:
                result, digest = stream_file(path, self.options.fields), hashed.digest
            else:  # read whole: hash the bytes actually indexed, even if the file just changed
                data = path.read_bytes()
                result, digest = stream_file(path, self.options.fields, data), self._digest(data)
            texts = iter(result.texts)
            first = next(texts, None)
        except UnreadableFile as exc:
            report.skipped.append((str(path), str(exc)))
            return None
        except OSError as exc:
            report.skipped.append((str(path), f"cannot be read: {exc.strerror or exc}"))
            return None
        except (ValueError, RecursionError) as exc:  # a reader met input it cannot take: this file only
            report.skipped.append((str(path), f"cannot be read ({type(exc).__name__}): {str(exc)[:200]}"))
            return None
        if first is None:
            report.skipped.append((str(path), "no text"))
            return None  # its chunks from before, if any, stay as they were
        documents = (self._document(text, source, digest) for text in itertools.chain([first], texts))
        return _FileWork(path, source, digest, documents, result.warnings,
                         resume=plan.incomplete.get(source) == digest)

    @staticmethod
    def _document(text: SourceText, source: str, digest: str) -> TextDocument:
        doc_id = source if text.record_id is None else f"{source}#{text.record_id}"
        meta = {**{k: v for k, v in text.metadata.items() if k not in RESERVED_METADATA},
                "source": source, "content_hash": digest}
        if text.record_id is not None:
            meta["record_id"] = text.record_id
        return TextDocument(doc_id, text.text, meta, title=text.title, page_starts=text.page_starts,
                            sections=text.sections)

    def _stage_file(self, writing: _Writing, work: _FileWork, existing: dict[str, _Existing], hashed: _Hashed,
                    report: IngestReport) -> None:
        """A file into the session: its old chunks out (unless it resumes), then its new chunks
        in, batch by batch; between two of its documents a commit may fall when one is due."""
        known = existing.pop(work.source, None)
        stored: set[str] = set()
        if known is not None and work.resume:
            stored = {document_of(cid) for cid in known.chunk_ids}
        elif known is not None:
            report.chunks_removed += writing.session.delete_chunks(known.chunk_ids)
        finished = True
        try:
            for number, doc in enumerate(work.documents):
                if doc.id in stored:
                    continue
                if number and writing.due():
                    writing.incomplete[work.source] = work.digest  # committed in part: the next run resumes
                    writing.commit(reopen=True)
                for chunk in self.engine.iter_prepare(doc):
                    writing.staging.add(chunk)
        except OSError as exc:  # the disk under a long file failed: keep what was read, retry next run
            report.warnings.append((str(work.path), f"reading stopped: {exc.strerror or exc}; read again next run"))
            finished = False
        if work.path.suffix.lower() in STREAMED_SUFFIXES and _signature(work.path) != hashed.signature:
            report.warnings.append((str(work.path), "changed while it was read; the next run reads it again"))
            finished = False
        if finished:
            writing.incomplete.pop(work.source, None)
        else:
            writing.incomplete[work.source] = ""  # matches no content hash: read again from the start
        report.warnings.extend((str(work.path), w) for w in work.warnings)
        writing.staging.files_done += 1
        report.files_indexed += 1


def _signature(path: Path) -> tuple[int, int] | None:
    try:
        info = path.stat()
    except OSError:
        return None
    return (info.st_size, info.st_mtime_ns)


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
