"""lfm2-search: multilingual late-interaction retrieval on the LFM2 backbone."""

from .colbert_config import ColBERTConfig
from .encoder import ColBERTEncoder

__all__ = ["ColBERTConfig", "ColBERTEncoder"]
