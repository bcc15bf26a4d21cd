"""Where the model comes from when none is named.

    --model (omitted)      ->  $LFM2_SEARCH_MODEL, else the model shipped inside the package
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import ModelUnavailableError

MODEL_ENV = "LFM2_SEARCH_MODEL"
EMBEDDED_MODEL_DIR = Path(__file__).resolve().parents[1] / "models" / "default"


class NoModelError(ModelUnavailableError):
    """No model was named and none is embedded or configured."""


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
