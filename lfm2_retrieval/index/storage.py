"""Crash-safe file operations: atomic JSON replacement, durable renames, the single-writer lock.

An index changes the way SQLite and Lucene change a database: new immutable files are
written under temporary names, made durable (fsync), renamed into place, and only then does
the one small `manifest.json` get atomically replaced to point at them. A `kill -9` at any
moment leaves either the old manifest or the new one, and both name complete files.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import threading
import time
from pathlib import Path
from typing import Any

from ..errors import IndexLockedError


# numpy parses .npy headers with ast.literal_eval, and CPython 3.11's AST constructor is not
# thread-safe ("AST constructor recursion depth mismatch" when readers refresh concurrently):
# every .npy of an index is opened under this lock. Opening is a header read; data stays mapped.
NPY_LOCK = threading.RLock()


def load_npy(path: Path, mmap_mode: str | None = None):
    import numpy as np

    with NPY_LOCK:
        array = np.load(path, mmap_mode=mmap_mode)
    # A plain ndarray over the mapped memory (it keeps the map open): every index or slice of a
    # np.memmap builds another memmap object, a tenth of a search's time.
    return np.asarray(array) if mmap_mode else array


class _Stream:
    """A file seen by numpy as a plain stream. numpy writes real files with ndarray.tofile, whose
    failure on a full disk is an OSError without errno ("32768 requested and 16352 written"):
    through write() it is ENOSPC, which the CLI and the API answer as a full disk."""

    def __init__(self, f) -> None:
        self.write = f.write


def save_npy(path, array) -> None:
    """np.save, with errors that say what happened (see _Stream). `path` may be an open file."""
    import numpy as np

    if hasattr(path, "write"):
        np.lib.format.write_array(_Stream(path), np.asanyarray(array), allow_pickle=False)
        return
    with open(path, "wb") as f:
        np.lib.format.write_array(_Stream(f), np.asanyarray(array), allow_pickle=False)


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_file(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def write_json_atomic(path: Path, value: Any) -> None:
    """Write `value` to a temporary file, fsync it, and rename it over `path` (durable_rename:
    the rename is the commit point of whatever `path` publishes)."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(json.dumps(value, indent=2, sort_keys=True))  # one write, not one per token
            f.flush()
            os.fsync(f.fileno())
        durable_rename(tmp, path)
    except BaseException:
        _unlink_quietly(tmp)  # a full disk leaves no half-written file behind (gone once renamed)
        raise


def durable_rename(src: Path, dst: Path) -> None:
    """Rename `src` over `dst` atomically, then make the folder durable.

    The folder's descriptor is opened before the rename, so that nothing after it can fail for
    want of a descriptor: when this raises, the caller knows which side of the rename it is on,
    RenameDone after it and any other error before it."""
    dir_fd = os.open(dst.parent, os.O_RDONLY)
    try:
        os.replace(src, dst)
        try:
            os.fsync(dir_fd)
        except OSError as exc:
            raise RenameDone(dst, exc) from exc
    finally:
        os.close(dir_fd)


class RenameDone(OSError):
    """The rename published `path`, but making the folder durable failed afterwards: readers
    already see the new file. A commit that meets this has happened (it may not survive a power
    loss until the folder is synced again, which the next commit does)."""

    def __init__(self, path: Path, cause: OSError) -> None:
        super().__init__(cause.errno, f"{path.name} was published, the folder not synced: {cause.strerror}",
                         str(path))


def _unlink_quietly(path: Path) -> None:
    try:
        path.unlink(missing_ok=True)
    except OSError:
        pass  # the next writer collects it (writer.collect_garbage)


def publish_dir(tmp_dir: Path, final_dir: Path) -> None:
    """Make every file in `tmp_dir` durable, then rename the folder to its final name."""
    for entry in tmp_dir.rglob("*"):
        fsync_file(entry) if entry.is_file() else fsync_dir(entry)
    fsync_dir(tmp_dir)
    durable_rename(tmp_dir, final_dir)


class WriterLock:
    """An exclusive `flock` on `<index>/write.lock`; the kernel drops it if the process dies."""

    def __init__(self, index_dir: Path) -> None:
        self.path = index_dir / "write.lock"
        self._fd: int | None = None

    def acquire(self, timeout: float = 0.0) -> None:
        """Take the lock, waiting up to `timeout` seconds for another writer to finish."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self._try_acquire()
                return
            except IndexLockedError:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.05)

    def _try_acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            if exc.errno in (errno.EAGAIN, errno.EACCES):
                raise IndexLockedError(
                    f"{self.path.parent} is being written by another writer (pid {holder}); "
                    "wait for it to finish, or stop it. Readers are not affected."
                ) from None
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
