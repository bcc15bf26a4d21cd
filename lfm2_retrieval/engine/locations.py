"""Where indexes live by default.

    --index default        ->  $LFM2_SEARCH_INDEXES/default   (./indexes/default unless set)
    --index ./some/folder  ->  that folder
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import IndexFolderError

DEFAULT_INDEX = "default"
INDEXES_ENV = "LFM2_SEARCH_INDEXES"


def indexes_home() -> Path:
    return Path(os.environ.get(INDEXES_ENV, "indexes"))


def resolve_index_path(name_or_path: str | os.PathLike | None) -> Path:
    """A bare name is a folder under the indexes home; anything path-like is used as it is."""
    value = str(name_or_path) if name_or_path else DEFAULT_INDEX
    path = Path(value)
    if not (path.is_absolute() or os.sep in value or value.startswith(".") or path.exists()):
        path = indexes_home() / value
    if path.exists() and not path.is_dir():
        raise IndexFolderError(f"{path} is a file, not an index folder: name a folder (or a new name) with --index")
    return path
