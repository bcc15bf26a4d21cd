"""What every command shares: the consoles, the option help, one-line answers to expected
failures (errors.py's exit codes), opening an index's engine, and the table and path helpers."""

from __future__ import annotations

import dataclasses

import functools
import os
import sys

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

console = Console()
err = Console(stderr=True)

INDEX_HELP = "Index name (a folder under ./indexes) or path."
RAY_ADDRESS_HELP = ("With --ray: the cluster to join (auto, host:6379, ray://host:10001); default: start a "
                    "local instance.")
MODEL_HELP = ("Model: a PyLate ColBERT folder or a hub id (needs internet). Default: the model the index "
              "was built with, else $LFM2_SEARCH_MODEL, else the embedded default model.")


ROOT_HELP = ("Ids and sources that are files under DIR are shown relative to it, and deletes and source filters "
             "take paths relative to it (default: where you start the server, as `lfm2-search index ./docs` there "
             "named them).")
ABSOLUTE_PATHS_HELP = "Show and take file paths absolute, as the index holds them, instead of relative to --root."


ANALYSIS_HELP = ("How BM25 reads text: 'language' (stop words, Snowball stems and statistics per chunk "
                 "language; docs/indexing.md lists the languages) or 'plain' (lower-cased words, as before 0.9).")
TITLE_WEIGHT_HELP = "Times a chunk's title and heading path count beside its text in BM25 (0: not at all)."


def ray_connected() -> bool:
    """This process already holds a Ray connection: --ray then uses it and starts no instance."""
    ray = sys.modules.get("ray")  # not imported: not connected (and importing it costs seconds)
    return ray is not None and ray.is_initialized()


def ray_guard() -> str:
    """What guards a local Ray instance's ports, which listen on every interface (Ray 2.60:
    docs/distributed.md#rays-own-ports): its token authentication, unless switched off."""
    if os.environ.get("RAY_AUTH_MODE", "").lower() == "disabled":
        return "Ray's token authentication is OFF (RAY_AUTH_MODE=disabled): anyone who reaches them can run code"
    return "Ray's token authentication (on by default) guards them"


def analysis_of(name: str | None, title_weight: int | None):
    """The Analysis that --analysis and --title-weight ask for (None: neither was given)."""
    from lfm2_retrieval.index.analysis import Analysis

    if name is None and title_weight is None:
        return None
    if name not in (None, "language", "plain"):
        fail(f"--analysis must be 'language' or 'plain', not {name!r}")
    base = Analysis.PLAIN if name == "plain" else Analysis()
    return base if title_weight is None else dataclasses.replace(base, title_weight=title_weight)


def fail(message: str, code: int = 1) -> None:
    err.print(f"[red]error:[/red] {escape(message)}", soft_wrap=True)
    raise typer.Exit(code=code)


def errors_are_answers(command):
    """Expected failures end a command with one line and their exit code (errors.py: 2 for a
    damaged index, 1 otherwise), never a traceback: a damaged file names itself and what to run,
    a full disk says which commit is intact."""
    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        from lfm2_retrieval.errors import as_search_error

        try:
            return command(*args, **kwargs)
        except Exception as exc:
            path = commit = None
            if "index" in kwargs:
                path, commit = _index_and_commit(kwargs["index"])
            known = as_search_error(exc, path, commit)
            if known is None:
                raise
            fail(str(known), code=known.exit_code)
    return wrapper


_answered = {"read_only": False}


def read_only(command):
    """A command that only reads: once it has answered, the console entry point may end the
    process without Python's teardown (main() in __init__.py), which after torch and numba
    have loaded costs 0.3-0.5 s (torch unregisters its operator libraries one by one), a sixth
    of a semantic search from the shell. Tests that run the app in-process are unaffected."""
    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        result = command(*args, **kwargs)
        _answered["read_only"] = True
        return result
    return wrapper


def answered_read_only() -> bool:
    return _answered["read_only"]


def _index_and_commit(index: str | None):
    """(path, commit) of an index named on the command line; commit None if it has none yet."""
    from lfm2_retrieval.engine import SearchEngine
    from lfm2_retrieval.engine.locations import resolve_index_path

    from lfm2_retrieval.errors import SearchError

    try:
        path = resolve_index_path(index)
    except SearchError:  # not a folder: the error being answered says so
        return None, None
    return path, SearchEngine.commit_of(path)


def cannot_listen(host: str, port: int) -> str | None:
    """Why the server could not bind host:port, checked before the model loads (None: it can)."""
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        with socket.socket(infos[0][0], socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
            probe.bind(infos[0][4])
    except OSError as exc:
        return exc.strerror or str(exc)
    return None


def table_of(title: str, rows: dict) -> Table:
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    for key, value in rows.items():
        table.add_row(key, escape(str(value)))
    return table


def open_engine(index: str | None, model: str | None = None, create: bool = False, **kwargs):
    """The engine of an index (the model loads when first needed, so reading and deleting
    commands never pay for it); failures are answered by errors_are_answers."""
    from lfm2_retrieval.engine import SearchEngine
    from lfm2_retrieval.engine.locations import resolve_index_path
    from lfm2_retrieval.errors import IndexFolderError

    from lfm2_retrieval.shards import is_sharded

    path = resolve_index_path(index)
    if not create and not (path / "manifest.json").exists() and not is_sharded(path):
        raise IndexFolderError(
            f"no index at {path}; build one with `lfm2-search index PATH --index {index or 'default'}`"
        )
    try:
        return SearchEngine.open(path, model=model, create=create, **kwargs)
    except ValueError as exc:  # a model folder that is not a ColBERT model
        fail(str(exc))


def display_source(source: str | None) -> str:
    if not source:
        return ""
    try:
        return os.path.relpath(source)
    except ValueError:
        return source


def snippet(text: str, width: int = 160) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"
