"""The dense head: one vector per text from the same forward pass as its token vectors.

ColBERT keeps a vector per token; a dense retriever keeps one per text. The student needs both:
the token vectors for MaxSim, and one vector in a multilingual teacher's space (384 dimensions of
multilingual-e5-small) for the dense leg of search, learnt from the teacher's embeddings of a
text and of its translations (training/dense_distillation.py). The head is small: the mean of the
backbone's hidden states over the tokens the text keeps (ColBERT's own selection: no padding, no
punctuation), a linear map to the teacher's dimension, L2 normalisation.

It lives in the folder `dense_head/` of a model folder and is *not* listed in modules.json, so
PyLate and sentence-transformers still load the folder as the ColBERT model it was; only this
project's encoder reads the head.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

FOLDER = "dense_head"


def masked_mean(hidden: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """[batch, dim] mean of hidden states [batch, tokens, dim] over the tokens keep [batch, tokens]
    marks (an all-false row gives zeros, not a division by zero)."""
    weights = keep.to(device=hidden.device, dtype=hidden.dtype).unsqueeze(-1)
    return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1)


class DenseHead(nn.Module):
    def __init__(self, in_features: int, out_features: int, target: str | None = None) -> None:
        super().__init__()
        self.linear = nn.Linear(in_features, out_features)
        self.target = target  # whose space it imitates, e.g. "intfloat/multilingual-e5-small"

    @property
    def dim(self) -> int:
        return self.linear.out_features

    def forward(self, hidden: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        """[batch, out] unit vectors (fp32) from hidden states [batch, tokens, in] and the keep
        mask [batch, tokens] of the tokens that count."""
        mean = masked_mean(hidden, keep)
        return F.normalize(self.linear(mean.to(self.linear.weight.dtype)).float(), p=2, dim=-1)

    def save(self, model_dir: Path) -> None:
        folder = Path(model_dir) / FOLDER
        folder.mkdir(parents=True, exist_ok=True)
        config = {"pooling": "mean over kept tokens", "in_features": self.linear.in_features,
                  "out_features": self.dim, "similarity": "cosine", "target": self.target}
        (folder / "config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
        save_file({k: v.detach().float().contiguous().cpu() for k, v in self.state_dict().items()},
                  str(folder / "model.safetensors"))

    @classmethod
    def load(cls, model_dir: Path) -> "DenseHead | None":
        """The head of a model folder, or None when it has none."""
        folder = Path(model_dir) / FOLDER
        if not (folder / "config.json").exists():
            return None
        raw = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        head = cls(raw["in_features"], raw["out_features"], raw.get("target"))
        head.load_state_dict(load_file(str(folder / "model.safetensors")))
        return head
