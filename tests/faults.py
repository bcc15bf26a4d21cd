"""Fault injection for the commit path, as SQLite tests every I/O error: the N-th file operation
under a folder fails with a chosen errno, and (persistent) every one after it too.

    with FailingFiles(index_path, fail_at=7, error=errno.EMFILE) as faults:
        index.add(...)                # the 7th open/write/fsync/rename/... under index_path fails
    faults.calls, faults.failed       # operations counted; whether the failure was reached

Run an operation with fail_at = 1, 2, ... until it completes without reaching its failure: then
every file operation it makes has been failed once. The operations wrapped are those that writing,
committing, merging, aborting and collecting garbage use from Python: os.open, open (builtins,
io and so pathlib), a write-mode file's write, os.fsync, os.replace/rename, os.unlink/remove,
os.rmdir, os.mkdir, os.listdir and os.scandir. pyarrow writes its Parquet files in C++: those
are not counted (numpy's and bm25s's .npy files, JSON and the binary files are).
"""

from __future__ import annotations

import builtins
import errno as errno_codes
import io
import os
from pathlib import Path


class _CountedFile:
    """A file opened for writing whose write() is a counted operation."""

    def __init__(self, f, faults: "FailingFiles", path: str) -> None:
        self._f, self._faults, self._path = f, faults, path

    def write(self, data):
        self._faults.tick("write", self._path)
        return self._f.write(data)

    def __getattr__(self, name):
        return getattr(self._f, name)

    def __iter__(self):
        return iter(self._f)

    def __enter__(self):
        self._f.__enter__()
        return self

    def __exit__(self, *exc):
        return self._f.__exit__(*exc)


class FailingFiles:
    """While active, the `fail_at`-th counted file operation under `root` raises
    OSError(error); with `persistent`, so does every later one (a full disk or an exhausted
    descriptor table stays so while the clean-up runs)."""

    def __init__(self, root: Path, fail_at: int, error: int = errno_codes.EIO, persistent: bool = True) -> None:
        self.root = os.path.realpath(root)
        self.fail_at, self.error, self.persistent = fail_at, error, persistent
        self.calls = 0
        self.failed = False
        self.log: list[tuple[str, str]] = []  # (operation, path) of each counted call
        self._saved: list[tuple[object, str, object]] = []

    # ------------------------------------------------------------------ counting
    def _under_root(self, path) -> bool:
        if isinstance(path, int):
            return False  # a descriptor (rmtree's dir_fd walk): its folder was counted when opened
        try:
            return os.path.realpath(os.fspath(path)).startswith(self.root)
        except TypeError:
            return False

    def tick(self, op: str, path) -> None:
        self.calls += 1
        self.log.append((op, str(path)))
        if self.calls == self.fail_at or (self.persistent and self.calls > self.fail_at):
            self.failed = True
            raise OSError(self.error, os.strerror(self.error), str(path))

    # ------------------------------------------------------------------ the wrappers
    def _wrap_path_call(self, op: str, real):
        def wrapper(path=".", *args, **kwargs):
            if self._under_root(path):
                self.tick(op, path)
            return real(path, *args, **kwargs)
        return wrapper

    def _wrap_open(self, real):
        def wrapper(file, mode="r", *args, **kwargs):
            counted = not isinstance(file, int) and self._under_root(file)
            if counted:
                self.tick("open", file)
            f = real(file, mode, *args, **kwargs)
            if counted and any(m in mode for m in "wax+"):
                return _CountedFile(f, self, os.fspath(file))
            return f
        return wrapper

    def _wrap_fsync(self, real):
        def wrapper(fd):
            self.tick("fsync", f"fd {fd}")  # only index files are synced while a test injects
            return real(fd)
        return wrapper

    def __enter__(self) -> "FailingFiles":
        patches = [(os, "open", self._wrap_path_call("os.open", os.open)),
                   (builtins, "open", self._wrap_open(builtins.open)),
                   (io, "open", self._wrap_open(io.open)),
                   (os, "fsync", self._wrap_fsync(os.fsync))]
        for name in ("replace", "rename", "unlink", "remove", "rmdir", "mkdir", "listdir", "scandir"):
            patches.append((os, name, self._wrap_path_call(name, getattr(os, name))))
        for owner, name, value in patches:
            self._saved.append((owner, name, getattr(owner, name)))
            setattr(owner, name, value)
        return self

    def __exit__(self, *exc) -> None:
        for owner, name, value in reversed(self._saved):
            setattr(owner, name, value)
        self._saved.clear()


def failure_points(log: list[tuple[str, str]]) -> list[int]:
    """The calls to fail (1-based): every call of a clean run, except that of a run of identical
    calls (the same operation on the same file: a JSON or .npy written in many pieces) only the
    first and the last are failed, the same code site as those between them."""
    points = []
    for i, call in enumerate(log):
        first = i == 0 or log[i - 1] != call
        last = i == len(log) - 1 or log[i + 1] != call
        if first or last:
            points.append(i + 1)
    return points


def leftovers(index_path: Path) -> list[str]:
    """Temporary files and folders that a failed write left behind."""
    return sorted(str(p.relative_to(index_path)) for p in Path(index_path).rglob("*") if ".tmp" in p.name)
