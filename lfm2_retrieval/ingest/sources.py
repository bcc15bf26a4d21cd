"""A file's identity in the index (its absolute path), and the names people type for it: ids and
filters that name files by paths relative to where they stand, made into what the index holds."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def source_name(path: Path) -> str:
    """A file's identity in the index: its absolute POSIX path."""
    return Path(os.path.abspath(path)).as_posix()


def absolute_id(value: str) -> str:
    """An id as the CLI's tables show it (a file's path relative to here, maybe with '#record' or
    '#chunk' after it) made into the id the index holds (the absolute path). Anything else as is."""
    cut = [len(value)] + [i for i, c in enumerate(value) if c == "#"]
    for i in cut:
        if value[:i] and Path(value[:i]).is_file():
            return source_name(Path(value[:i])) + value[i:]
    return value


def absolute_sources(filter_: Any) -> Any:
    """A filter whose "source" values name files by relative paths, with absolute ones instead
    (what the index holds), so `--filter '{"source": "docs/a.md"}'` works from where you are;
    a relative $prefix or $glob ("docs/ja/", "docs/*.md") is taken from here as well. Anything
    that is not a filter is returned as it is, for the filter's validation to name."""
    if isinstance(filter_, list):
        return [absolute_sources(f) for f in filter_]
    if not isinstance(filter_, dict):
        return filter_
    out = {}
    for key, cond in filter_.items():
        if key == "source":
            cond = {op: _absolute(v, op) for op, v in cond.items()} if isinstance(cond, dict) else _absolute(cond)
        elif key == "$or":
            cond = absolute_sources(cond)
        out[key] = cond
    return out


def _absolute(value, op: str = "$eq"):
    if isinstance(value, list):
        return [_absolute(x) for x in value]
    if not isinstance(value, str):
        return value
    if op in ("$prefix", "$glob"):
        if value.startswith(("/", "*")):
            return value
        here = Path.cwd().as_posix().rstrip("/") + "/"
        return here + value.removeprefix("./")
    return source_name(Path(value)) if Path(value).is_file() else value
