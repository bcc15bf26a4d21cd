"""lfm2-search: multilingual late-interaction retrieval on the LFM2 backbone."""

from .model.config import ColBERTConfig
from .model.encoder import ColBERTEncoder

__all__ = ["ColBERTConfig", "ColBERTEncoder"]
