"""Every error a user can meet, in one hierarchy, each with its CLI exit code and HTTP answer.

The CLI ends a command on a SearchError with its message and `exit_code`; the HTTP API answers
it with `http_status` and the machine-readable `code`. Errors from outside the package that
mean the same thing (a full disk, a model folder that is not there) are translated by
`as_search_error`, so both front ends map them in one place.

    SearchError                       exit 1   HTTP 500 internal_error
    +-- InvalidRequestError           exit 1        422 invalid_request
    |   +-- FilterError                             400 invalid_filter
    |   +-- InvalidDocumentError                    422 invalid_document
    +-- DocumentExistsError           exit 1        409 already_exists
    +-- NotFoundError                 exit 1        404 not_found
    +-- ModelUnavailableError         exit 1        500 model_unavailable
    +-- IndexFolderError              exit 1        500 index_unavailable
    +-- IndexLockedError              exit 1        409 index_locked (Retry-After)
    +-- IndexDamagedError             exit 2        500 index_damaged
    +-- DiskFullError                 exit 1        507 disk_full (Retry-After)
    +-- ResourcesExhaustedError       exit 1        503 resources_exhausted (Retry-After)
    +-- StorageIOError                exit 1        503 io_error (Retry-After)
    +-- ShardUnavailableError         exit 1        503 shard_unavailable (Retry-After)

Running out of something (disk, file descriptors, memory) or an I/O error of the device is never
reported as damage: the index is whole, only this operation could not be done. A write that
meets one is rolled back unless it had already committed, and then it is answered as done.
"""

from __future__ import annotations

import errno
from pathlib import Path


class SearchError(Exception):
    """Base of the errors this package raises on purpose: the message says what to do."""

    exit_code = 1
    http_status = 500
    code = "internal_error"
    retry_after: int | None = None  # seconds, for answers a client should retry
    headers: dict[str, str] | None = None  # more HTTP headers of the answer (WWW-Authenticate)


class InvalidRequestError(SearchError, ValueError):
    """Input that is not of the documented form (an empty query, a bad option)."""

    http_status, code = 422, "invalid_request"


class FilterError(InvalidRequestError):
    """A metadata filter that is not of the documented form."""

    http_status, code = 400, "invalid_filter"


class InvalidDocumentError(InvalidRequestError):
    """A document that cannot be indexed (no text, reserved metadata, an id given twice)."""

    code = "invalid_document"


class DocumentExistsError(SearchError, KeyError):
    """Adding (without replacing) a document id the index already holds."""

    http_status, code = 409, "already_exists"

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class NotFoundError(SearchError, LookupError):
    """No document, chunk or file with the given id."""

    http_status, code = 404, "not_found"


class ModelUnavailableError(SearchError):
    """No model named and none embedded, or a named model that cannot be found."""

    code = "model_unavailable"


class IndexFolderError(SearchError):
    """An index folder that is missing, of an unknown format, or built for other vectors."""

    code = "index_unavailable"


class IndexLockedError(SearchError):
    """Another process (or another writer in this process) is writing to the index."""

    http_status, code, retry_after = 409, "index_locked", 5


class IndexDamagedError(SearchError):
    """A file of the index does not hold what was written; the message names it and what to run."""

    exit_code, code = 2, "index_damaged"

    def __init__(self, index_path: Path, part: str, problem: str) -> None:
        self.part, self.problem = part, problem
        remedy = ("restore it from its last commit point" if part == "manifest.json" else
                  "drop the damaged part (its files are indexed again by the next `lfm2-search index` run)")
        super().__init__(f"index {index_path} is damaged: {part}: {problem}. Run `lfm2-search check --index "
                         f"{index_path}` for a full report, then `lfm2-search check --repair` to {remedy}")


class ShardUnavailableError(SearchError):
    """A shard of a sharded index did not answer in time (or its server is gone): the search
    is refused rather than answered from fewer documents than asked, unless the request allows
    partial results."""

    http_status, code, retry_after = 503, "shard_unavailable", 1

    def __init__(self, shards: list[str], why: str) -> None:
        self.shards, self.reason = shards, why
        super().__init__(f"shard {', '.join(shards)} {why}; retry, or allow partial results (allow_partial: "
                         "true) to be answered from the other shards")


class DiskFullError(SearchError, OSError):
    """No space left while writing; the index stays at its last commit (writes publish by rename)."""

    # 507 names the cause exactly; Retry-After says, as for the 503s, that nothing is damaged and
    # the same request succeeds once space is freed.
    http_status, code, retry_after = 507, "disk_full", 60


class ResourcesExhaustedError(SearchError, OSError):
    """No file descriptors or memory left for this operation; the index is intact, retry later."""

    http_status, code, retry_after = 503, "resources_exhausted", 2


class StorageIOError(SearchError, OSError):
    """The storage device failed a read or write (EIO); the index stays at its last commit."""

    http_status, code, retry_after = 503, "io_error", 2


# errno values that mean "out of something", not "the index is wrong".
RESOURCE_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.EAGAIN})
DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})


def is_disk_full(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in DISK_FULL_ERRNOS


def is_resource_error(exc: BaseException) -> bool:
    """Whether `exc` means the machine ran out of something (or the device failed), not that a
    file holds the wrong bytes: such errors must never be reported as damage."""
    if isinstance(exc, MemoryError):
        return True
    return isinstance(exc, OSError) and exc.errno in (RESOURCE_ERRNOS | DISK_FULL_ERRNOS | {errno.EIO})


def raise_if_resource_error(exc: BaseException, index_path: Path | str | None = None) -> None:
    """Re-raise `exc` as its SearchError when it is a resource or device error (see
    is_resource_error); return otherwise, for the caller to judge it (e.g. as damage)."""
    if is_resource_error(exc):
        raise as_search_error(exc, index_path) from exc


def as_search_error(exc: BaseException, index_path: Path | str | None = None,
                    commit: int | None = None) -> SearchError | None:
    """`exc` as a SearchError when it is one, or means one; None for a real bug."""
    if isinstance(exc, SearchError):
        return exc
    if is_disk_full(exc):
        where = f"the disk of {index_path}" if index_path else "the disk"
        at = f"commit {commit}" if commit is not None else "its last commit"
        return DiskFullError(
            f"no space left on {where} ({getattr(exc, 'filename', None) or 'while writing'}). The index is intact at "
            f"{at}: what this write did after that commit was rolled back. Free some space and run the same "
            "command (or request) again; an `lfm2-search index` run goes on from there.")
    if isinstance(exc, MemoryError) or (isinstance(exc, OSError) and exc.errno in RESOURCE_ERRNOS):
        what = "memory" if isinstance(exc, MemoryError) or exc.errno == errno.ENOMEM else "file descriptors"
        return ResourcesExhaustedError(
            f"the process ran out of {what} ({_describe(exc)}). The index is whole"
            f"{_at(index_path, commit)}; nothing is damaged. Retry in a moment, or raise the limit "
            "(ulimit -n for descriptors)")
    if isinstance(exc, OSError) and exc.errno == errno.EIO:
        return StorageIOError(
            f"the storage device failed an I/O operation ({_describe(exc)}). The index stays"
            f"{_at(index_path, commit)} (a write that met this was rolled back); check the device, then "
            "retry (`lfm2-search check --full` verifies every file)")
    # lfm2_core stays independent of this package, so its own error is recognised by name.
    if type(exc).__name__ == "ModelNotFoundError":
        return ModelUnavailableError(str(exc))
    return None


def _describe(exc: BaseException) -> str:
    if isinstance(exc, OSError):
        where = f": {exc.filename}" if exc.filename else ""
        return f"{errno.errorcode.get(exc.errno, exc.errno)}{where}"
    return type(exc).__name__


def _at(index_path: Path | str | None, commit: int | None) -> str:
    where = f" ({index_path})" if index_path else ""
    return where + (f" at commit {commit}" if commit is not None else " at its last commit")
