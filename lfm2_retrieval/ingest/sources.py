"""A file's identity in the index (its absolute path), and the names people see and type for it:
ids and filters that name files by paths relative to a folder (the server's, the shell's)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def source_name(path: Path) -> str:
    """A file's identity in the index: its absolute POSIX path."""
    return Path(os.path.abspath(path)).as_posix()


class PathView:
    """How a front end names files: relative to `root` in what it shows (ids, `source`,
    `doc_id`), and relative to it in what it is given (deletes, `source` filters), while the
    index holds absolute paths. `root` None shows and takes them absolute, as held.

    The server's root is the folder `serve` (or `mcp`) started in, unless --root names another,
    and the CLI's is where it runs: `lfm2-search index ./docs` then `DELETE /documents/docs/a.md`
    or `{"source": "docs/a.md"}` work against the same server, and no answer gives away the
    host's directory layout unless `--absolute-paths` asks for it. Paths outside the root, and
    ids that are not paths, pass through unchanged."""

    def __init__(self, root: str | Path | None) -> None:
        self.root = None if root is None else Path(os.path.abspath(root)).as_posix().rstrip("/") + "/"

    def shown(self, value: str) -> str:
        """An id or source as held (absolute) -> as shown (relative to the root, where under it)."""
        if self.root and isinstance(value, str) and value.startswith(self.root):
            return value[len(self.root):]
        return value

    def held(self, value: str) -> list[str]:
        """What an id or source as given may be as held: itself (ids need not be paths: a
        document added as "report.md" through the API keeps that id) and, when it is a relative
        path (maybe with '#record' or '#chunk' after it), that path taken from the root."""
        if not self.root or not isinstance(value, str) or not value or value.startswith("/"):
            return [value]
        return [value, self.root + value.removeprefix("./")]

    def first_held(self, value: str, act):
        """`act(name)` for each name `value` may be held as, until one finds something (its
        result has chunks): a delete by a relative path."""
        for name in self.held(value):
            result = act(name)
            if result.chunks:
                break
        return result

    def shown_metadata(self, metadata: dict) -> dict:
        if not self.root:
            return metadata
        return {k: self.shown(v) if k in ("source", "doc_id") else v for k, v in metadata.items()}

    def held_filter(self, filter_: Any) -> Any:
        """A filter whose "source" values (and $prefix / $glob patterns) are relative to the root."""
        if not self.root:
            return filter_
        if isinstance(filter_, list):
            return [self.held_filter(f) for f in filter_]
        if not isinstance(filter_, dict):
            return filter_
        out = {}
        for key, cond in filter_.items():
            if key == "source":
                cond = (dict(self._held_condition(op, v) for op, v in cond.items()) if isinstance(cond, dict)
                        else dict([self._held_condition("$eq", cond)]))
            elif key in ("$or", "$and"):
                cond = self.held_filter(cond)
            out[key] = cond
        return out

    def _held_condition(self, op: str, value) -> tuple[str, Any]:
        """One condition on "source": equality becomes membership of what the value may be as
        held; a relative $prefix or $glob is taken from the root."""
        if op in ("$prefix", "$glob"):
            relative = isinstance(value, str) and not value.startswith(("/", "*"))
            return op, self.root + value.removeprefix("./") if relative else value
        if op in ("$eq", "$ne") and isinstance(value, str):
            return ("$in" if op == "$eq" else "$nin"), self.held(value)
        if op in ("$in", "$nin") and isinstance(value, list):
            return op, [held for v in value for held in (self.held(v) if isinstance(v, str) else [v])]
        return op, value
