"""Text -> tokens -> vectors: the ColBERT encoder on the LFM2 backbone, its PyLate-compatible
folder format (config.py), its tokenizer with query and document prefixes (tokenization.py),
and where the default model comes from (locations.py)."""

from .config import ColBERTConfig
from .encoder import ColBERTEncoder
from .locations import NoModelError, default_model

__all__ = ["ColBERTConfig", "ColBERTEncoder", "NoModelError", "default_model"]
