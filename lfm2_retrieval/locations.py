"""Where things are by default: the indexes folder and the embedded default model.

    --index default        ->  $LFM2_SEARCH_INDEXES/default   (./indexes/default unless set)
    --index ./some/folder  ->  that folder
    --model (omitted)      ->  $LFM2_SEARCH_MODEL, else the model shipped inside the package
"""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_INDEX = "default"
INDEXES_ENV = "LFM2_SEARCH_INDEXES"
MODEL_ENV = "LFM2_SEARCH_MODEL"
EMBEDDED_MODEL_DIR = Path(__file__).resolve().parent / "models" / "default"


class NoModelError(RuntimeError):
    """No model was named and none is embedded or configured."""


def indexes_home() -> Path:
    return Path(os.environ.get(INDEXES_ENV, "indexes"))


def resolve_index_path(name_or_path: str | os.PathLike | None) -> Path:
    """A bare name is a folder under the indexes home; anything path-like is used as it is."""
    value = str(name_or_path) if name_or_path else DEFAULT_INDEX
    path = Path(value)
    if path.is_absolute() or os.sep in value or value.startswith(".") or path.exists():
        return path
    return indexes_home() / value


def embedded_model_available() -> bool:
    return (EMBEDDED_MODEL_DIR / "modules.json").is_file()


def default_model() -> str:
    """The model used when none is named: $LFM2_SEARCH_MODEL, else the embedded one."""
    if os.environ.get(MODEL_ENV):
        return os.environ[MODEL_ENV]
    if embedded_model_available():
        return str(EMBEDDED_MODEL_DIR)
    raise NoModelError(
        "no model named and this installation has no embedded default model; pass --model with a "
        f"PyLate ColBERT folder (or a hub id such as LiquidAI/LFM2-ColBERT-350M when online), or set {MODEL_ENV}"
    )


def model_source(name_or_path: str) -> str:
    """How to record a model in an index: local folders as absolute paths, hub ids as they are."""
    path = Path(name_or_path).expanduser()
    return str(path.resolve()) if path.exists() else name_or_path
