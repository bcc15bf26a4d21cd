"""Text -> tokens -> vectors: the ColBERT encoder on the LFM2 backbone, its PyLate-compatible
folder format (config.py), its tokenizer with query and document prefixes (tokenization.py),
and where the default model comes from (locations.py).

The encoder (and with it torch) loads on first use: `from lfm2_retrieval.model.locations import
default_model` does not start torch, so the commands that never encode stay quick."""

from .config import ColBERTConfig
from .locations import NoModelError, default_model

__all__ = ["ColBERTConfig", "ColBERTEncoder", "NoModelError", "default_model"]


def __getattr__(name: str):
    if name == "ColBERTEncoder":
        from .encoder import ColBERTEncoder

        return ColBERTEncoder
    raise AttributeError(f"module 'lfm2_retrieval.model' has no attribute {name!r}")
