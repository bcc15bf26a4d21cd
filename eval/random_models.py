"""Random-weight LFM2 ColBERT folders, made by PyLate itself, for parity tests and benchmarks.

The real LFM2 weights cannot be downloaded here, so parity is proven on random weights: a
byte-level BPE tokenizer is trained on a few texts, `transformers.Lfm2Model` is created with
random weights (norm gains perturbed so they are not all ones) and saved, and
`pylate.models.ColBERT` turns that folder into a ColBERT model folder (adding `[Q] `/`[D] ` and
`1_Dense/`). Needs the test extras (transformers, pylate).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

from lfm2_retrieval.model.tokenizer_training import train_byte_level_bpe

TINY_SHAPE: dict[str, Any] = dict(
    hidden_size=64, intermediate_size=256, num_hidden_layers=4, num_attention_heads=4,
    num_key_value_heads=2, layer_types=["conv", "full_attention", "conv", "full_attention"],
)
# LFM2-350M / LFM2-ColBERT-350M: 16 layers, attention at 2, 5, 8, 10, 12, 14.
LFM2_350M_SHAPE: dict[str, Any] = dict(
    hidden_size=1024, intermediate_size=6656, num_hidden_layers=16, num_attention_heads=16,
    num_key_value_heads=8,
    layer_types=["full_attention" if i in (2, 5, 8, 10, 12, 14) else "conv" for i in range(16)],
)
SAMPLE_TEXTS = [
    "The quick brown fox jumps over the lazy dog.",
    "Late interaction keeps one vector per token and scores with MaxSim.",
    "Le renard brun rapide saute par-dessus le chien paresseux.",
    "El zorro marrón rápido salta sobre el perro perezoso.",
    "日本語のテキスト検索は空白で単語を区切らない。",
    "한국어 문장도 검색할 수 있어야 합니다.",
    "中文检索需要处理没有空格的文本。",
    "البحث باللغة العربية يكتب من اليمين إلى اليسار.",
    "Punctuation: commas, full stops; question marks? (yes!) [brackets] {braces}",
]


def build_random_colbert(
    out_dir: str | Path,
    shape: dict[str, Any] | None = None,
    embedding_dim: int = 32,
    texts: Iterable[str] | None = None,
    vocab_size: int = 600,
    seed: int = 0,
    colbert_kwargs: dict[str, Any] | None = None,
) -> Path:
    """Create `out_dir` as a PyLate ColBERT folder with random LFM2 weights; return its path."""
    from pylate import models
    from transformers import Lfm2Config, Lfm2Model

    out = Path(out_dir)
    base = out.with_name(out.name + "-base")
    corpus = list(texts) if texts is not None else SAMPLE_TEXTS * 20
    tokenizer = train_byte_level_bpe(corpus, vocab_size, base, prefixes=())
    torch.manual_seed(seed)
    config = Lfm2Config(vocab_size=tokenizer.get_vocab_size(), bos_token_id=1, eos_token_id=2,
                        pad_token_id=0, **(shape or TINY_SHAPE))
    backbone = Lfm2Model(config)
    with torch.no_grad():
        for name, param in backbone.named_parameters():
            if name.endswith("norm.weight") or "layernorm" in name:
                param.uniform_(0.5, 1.5)
    backbone.save_pretrained(base)
    colbert = models.ColBERT(str(base), embedding_size=embedding_dim, device="cpu", **(colbert_kwargs or {}))
    colbert.save(str(out))
    return out
