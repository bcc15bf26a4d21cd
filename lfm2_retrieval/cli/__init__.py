"""The `lfm2-search` command line, one module per family of commands.

    lfm2-search index ./docs                 index a folder (again: only what changed)   indexing.py
    lfm2-search search "a question" -k 5     ranked chunks with their sources            searching.py
    lfm2-search info | list | delete | shard | optimize | check                         managing.py
    lfm2-search serve                        the HTTP API on 127.0.0.1:8000              serving.py
    lfm2-search mcp                          the index as MCP tools for AI agents        serving.py
    lfm2-search train | model-info           models                                      training.py

common.py holds what they share: consoles, errors as one line and an exit code, opening an index.
"""

import logging
import os
import sys

from . import indexing, managing, searching, serving, training  # noqa: F401 - each registers its commands
from .app import app
from .common import answered_read_only

__all__ = ["app", "main"]


def main() -> None:  # pragma: no cover - console entry point
    try:
        app(prog_name="lfm2-search")
    except SystemExit as done:
        if done.code in (None, 0) and answered_read_only():
            # Nothing left to write: end without the interpreter's teardown (common.read_only).
            sys.stdout.flush()
            sys.stderr.flush()
            logging.shutdown()
            os._exit(0)
        raise
