"""The contrastive loss of ColBERT training, on this project's differentiable forward pass.

PyLate's losses (pylate.losses.Contrastive, Distillation) take a pylate ColBERT model (a
sentence-transformers module list) and call it themselves; our encoder is a plain nn.Module,
so the same objective is written here: MaxSim scores of every query against every passage of
the batch, and cross-entropy towards each query's own passage (in-batch negatives).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def pairwise_maxsim(q: torch.Tensor, q_mask: torch.Tensor, d: torch.Tensor, d_mask: torch.Tensor) -> torch.Tensor:
    """[Bq, Bd] MaxSim: for each query token its best passage token, summed over query tokens.

    q: [Bq, Lq, dim], d: [Bd, Ld, dim] (normalised); masks are 1 where a token counts.
    """
    sims = torch.einsum("qid,pjd->qpij", q, d)  # [Bq, Bd, Lq, Ld]
    sims = sims.masked_fill(~d_mask.bool()[None, :, None, :], float("-inf"))
    best = sims.amax(dim=-1)  # [Bq, Bd, Lq]
    return (best * q_mask[:, None, :].to(best.dtype)).sum(-1)


def contrastive_loss(scores: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Cross-entropy of each query (row) towards its own passage (the diagonal)."""
    labels = torch.arange(scores.shape[0], device=scores.device)
    return F.cross_entropy(scores / temperature, labels)
