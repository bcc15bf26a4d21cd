"""Every file operation of every kind of commit, failed in turn (tests/faults.py).

For add, upsert, delete, merge, optimize, a first build (the codec trained) and a sharded
commit: the N-th file operation under the index fails with EMFILE, ENOSPC or EIO, and every one
after it (the condition lasts while the clean-up runs), for every N until the operation completes
without reaching N (of a run of identical calls, a file written in pieces, the first and the last).
After each:
  - the index opens, and holds exactly the old commit's content or the new one's;
  - the caller was told which: an exception means the old content (and is a resource, disk or
    I/O error, never "damaged"); a return means the new;
  - a full check finds every part sound;
  - the reader that met the fault refreshes and searches, and the next write succeeds and
    leaves no temporary file behind (what the failed write left is collected).
`pytest tests/test_fault_injection.py -s` prints the table of cases tried (docs/robustness.md).
"""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from lfm2_retrieval.engine import SearchEngine
from lfm2_retrieval.errors import IndexDamagedError, as_search_error
from lfm2_retrieval.index import MultiVectorIndex
from lfm2_retrieval.shards import ShardedIndex, open_index

from faults import FailingFiles, failure_points, leftovers

DIM = 16
ERRORS = {"EMFILE": errno.EMFILE, "ENOSPC": errno.ENOSPC, "EIO": errno.EIO}
RESULTS: dict[tuple[str, str], tuple[int, int]] = {}  # (operation, error) -> (failures injected, calls of a clean run)


def vectors(n: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        v = rng.standard_normal((int(rng.integers(4, 9)), DIM)).astype(np.float32)
        out.append(v / np.linalg.norm(v, axis=1, keepdims=True))
    return out


def chunks(prefix: str, n: int, seed: int) -> tuple[list[str], list[np.ndarray], list[str], list[dict]]:
    ids = [f"{prefix}{i}" for i in range(n)]
    return ids, vectors(n, seed), [f"text of {i} about tides" for i in ids], [{"lang": "en", "n": i} for i in range(n)]


def content(index) -> tuple[int, list[tuple[str, str]]]:
    """What a reader sees: the commit and its chunks."""
    return index.commit, sorted((c["id"], c["text"]) for c in index.iter_chunks())


def content_at(path: Path) -> tuple[int, list[tuple[str, str]]]:
    """What a new reader of `path` sees (its files released at once: thousands of cases run)."""
    index = open_index(path)
    try:
        return content(index)
    finally:
        index.close()


def build_plain(path: Path) -> None:
    index = MultiVectorIndex.create(path, dim=DIM, nbits=2, num_centroids=8)
    index.add(*chunks("a", 6, 1))
    index.add(*chunks("b", 6, 2))
    index.delete(["a1"])


def build_empty(path: Path) -> None:
    MultiVectorIndex.create(path, dim=DIM, nbits=2, num_centroids=8)


def build_sharded(path: Path) -> None:
    index = ShardedIndex.create(path, n_shards=2, dim=DIM, nbits=2, num_centroids=8)
    with index.writer() as w:
        w.add(*chunks("a", 8, 1))


OPERATIONS = {
    # name: (template builder, the operation on an open index)
    "first build": (build_empty, lambda index: index.add(*chunks("n", 4, 7))),
    "add": (build_plain, lambda index: index.add(*chunks("n", 3, 7))),
    "upsert": (build_plain, lambda index: index.upsert(["a0", "n0"], *chunks("u", 2, 8)[1:])),
    "delete": (build_plain, lambda index: index.delete(["a2", "b3"])),
    "merge": (build_plain, lambda index: index.merge_segments(max_segments=1)),
    "optimize": (build_plain, lambda index: index.optimize()),
    "sharded commit": (build_sharded, lambda index: _sharded_write(index)),
}


def _sharded_write(index) -> None:
    with index.writer() as w:
        w.add(*chunks("n", 4, 7))
        w.delete(["a3"])


@pytest.fixture(scope="module")
def templates(tmp_path_factory):
    root = tmp_path_factory.mktemp("templates")
    built = {}
    for build, _ in OPERATIONS.values():
        if build.__name__ not in built:
            build(root / build.__name__)
            built[build.__name__] = root / build.__name__
    return built


def run_case(template: Path, path: Path, operation, fail_at: int | None, error: int):
    """Copy the template to `path`, open it, run `operation` failing at `fail_at`; returns
    (reader, exception or None, faults)."""
    shutil.copytree(template, path)
    index = open_index(path)
    faults = FailingFiles(path, fail_at=fail_at or 10**9, error=error)
    outcome = None
    with faults:
        try:
            operation(index)
        except Exception as exc:
            outcome = exc
    return index, outcome, faults


# Every suite run fails every failure point once, the three errors in rotation (point i with
# ERRORS[i % 3]); LFM2_SEARCH_FAULTS=all fails every point with every error (the docs' table).
FULL_CROSS = os.environ.get("LFM2_SEARCH_FAULTS") == "all"


@pytest.mark.parametrize("operation", list(OPERATIONS))
def test_every_failed_file_operation_leaves_the_old_commit_or_the_new(templates, fast_tmp, operation):
    build, op = OPERATIONS[operation]
    template = templates[build.__name__]
    before = content_at(template)
    reader, clean, clean_faults = run_case(template, fast_tmp / "clean", op, None, errno.EIO)
    reader.close()
    assert clean is None, clean
    after = content_at(fast_tmp / "clean")
    assert after != before
    points = failure_points(clean_faults.log)
    names = list(ERRORS)
    cases = [(n, e) for i, n in enumerate(points) for e in (names if FULL_CROSS else [names[i % len(names)]])]
    for n, error in cases:
        check_case(template, fast_tmp / f"case-{n}-{error}", op, n, error, before, after, operation)
        RESULTS[operation, error] = (RESULTS.get((operation, error), (0, 0))[0] + 1, clean_faults.calls)
    # Past the last operation nothing fails, and the operation completes.
    reader, outcome, faults = run_case(template, fast_tmp / "past", op, len(clean_faults.log) + 1, errno.EIO)
    reader.close()
    assert not faults.failed and outcome is None
    assert content_at(fast_tmp / "past") == after


def check_case(template: Path, path: Path, op, n: int, error: str, before, after, operation: str) -> None:
    reader, outcome, faults = run_case(template, path, op, n, ERRORS[error])
    where = f"{operation}, {error} at file operation {n} ({faults.log[n - 1] if faults.failed else 'none'})"
    assert faults.failed, where
    seen = content_at(path)  # it opens, whatever was failed
    if outcome is None:
        assert seen == after, f"{where}: returned, but the new commit is not there"
    else:
        assert seen == before, f"{where}: raised {outcome!r}, but the index changed"
        known = as_search_error(outcome)
        assert known is not None and not isinstance(known, IndexDamagedError), f"{where}: raised {outcome!r}"
    report = SearchEngine.check(path, full=True)
    assert not report.problems, f"{where}: {report.problems}"
    reader.refresh()  # the reader that met the fault goes on
    assert content(reader) == seen, where
    reader.search(vectors(1, 99)[0], k=3)
    with reader.writer() as w:  # the next write succeeds and collects the failed write's files
        w.add(*chunks("next", 1, 5))
    reader.close()
    assert leftovers(path) == [], f"{where}: {leftovers(path)}"
    assert len(content_at(path)[1]) == len(seen[1]) + 1, where
    shutil.rmtree(path)




def test_print_the_table():
    """The cases tried, for docs/robustness.md (run with -s)."""
    if not RESULTS:
        pytest.skip("run with the sweep above")
    print(f"\n{'every point with every error' if FULL_CROSS else 'every point once, the errors in rotation'}")
    print("\n| operation | file operations | " + " | ".join(f"{e}: failures injected" for e in ERRORS) + " |")
    print("|---|---:|" + "---:|" * len(ERRORS))
    for operation in OPERATIONS:
        cells = [str(RESULTS.get((operation, e), ("-",))[0]) for e in ERRORS]
        calls = max((RESULTS.get((operation, e), (0, 0))[1] for e in ERRORS), default=0)
        print(f"| {operation} | {calls} | " + " | ".join(cells) + " |")
    print(f"total: {sum(n for n, _ in RESULTS.values())} injected failures, every one held")
