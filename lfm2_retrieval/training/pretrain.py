"""Masked language modelling: an optional stage before contrastive training (`pretrain_steps`).

The backbone is bidirectional, so its language-modelling objective is BERT's masked one: a
`pretrain_mask_rate` share of each text's tokens (30%, as ModernBERT) is hidden and predicted
back through the input embeddings (a tied head, as LFM2's own LM head: no new weights). A hidden
position takes the embedding of `<|pad|>`, a token that no input ever contains (this project pads
with EOS, as PyLate does for LLM tokenizers), so it serves as the mask embedding without
growing the vocabulary. BOS and the [Q] / [D] prefixes are never hidden.

Texts: every distinct query and document of the training pairs, tokenized as documents.
The stage is measured against training without it in the README (Training).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..model.encoder import ColBERTEncoder
from ..model.tokenization import pad
from ..model.tokenizer_training import PAD

IGNORE = -100  # cross_entropy's ignore_index: positions that were not hidden


def pretraining_texts(pairs: Sequence) -> list[str]:
    """Distinct texts of the pairs (queries, documents, negatives), in first-seen order."""
    seen: dict[str, None] = {}
    for pair in pairs:
        for text in (pair.query, pair.document, pair.negative):
            if text:
                seen.setdefault(text, None)
    return list(seen)


def mask_id(encoder: ColBERTEncoder) -> int:
    token_id = encoder.tokenizer.tokenizer.token_to_id(PAD)
    if token_id is None:
        raise ValueError(f"masked-LM pre-training needs a {PAD} token in the tokenizer, to stand for hidden tokens")
    return token_id


def hide_tokens(ids: np.ndarray, attention: np.ndarray, rate: float, protected: np.ndarray, mask_token: int,
                rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(inputs with `rate` of the eligible tokens replaced by mask_token, labels: the hidden
    tokens' ids, IGNORE elsewhere). At least one token per row is hidden when it has any."""
    eligible = attention.astype(bool) & ~np.isin(ids, protected)
    draw = rng.random(ids.shape)
    hidden = eligible & (draw < rate)
    # A short text might draw nothing: hide its eligible token with the smallest draw.
    empty = ~hidden.any(1) & eligible.any(1)
    if empty.any():
        first = np.where(eligible, draw, np.inf).argmin(1)
        hidden[np.flatnonzero(empty), first[empty]] = True
    inputs = np.where(hidden, mask_token, ids)
    labels = np.where(hidden, ids, IGNORE)
    return inputs, labels


def masked_lm_loss(encoder: ColBERTEncoder, inputs: np.ndarray, attention: np.ndarray,
                   labels: np.ndarray) -> tuple[torch.Tensor, float]:
    """(cross-entropy over the hidden positions, share of them predicted right)."""
    hidden_states = encoder.backbone(torch.from_numpy(inputs), torch.from_numpy(attention))
    targets = torch.from_numpy(labels)
    at = targets != IGNORE
    logits = hidden_states[at] @ encoder.backbone.embed_tokens.weight.T  # only the hidden positions
    loss = F.cross_entropy(logits.float(), targets[at])
    accuracy = float((logits.argmax(-1) == targets[at]).float().mean())
    return loss, accuracy


def pretrain(encoder: ColBERTEncoder, texts: list[str], steps: int, batch_size: int, learning_rate: float,
             mask_rate: float, seed: int, log: Callable[[dict], None], log_every: int = 10,
             weight_decay: float = 0.01, grad_clip: float = 1.0) -> None:
    """Train the backbone in place on masked-token prediction: AdamW, 10% warmup, cosine decay."""
    if not texts:
        raise ValueError("masked-LM pre-training needs text")
    rng, order_rng = np.random.default_rng(seed), random.Random(seed)
    tokenizer = encoder.tokenizer
    protected = np.array([i for i in (tokenizer.tokenizer.token_to_id("<|startoftext|>"), tokenizer.query_prefix_id,
                                      tokenizer.document_prefix_id, tokenizer.pad_id) if i is not None])
    hide_with = mask_id(encoder)
    backbone = encoder.backbone
    backbone.train()
    optimizer = torch.optim.AdamW(backbone.parameters(), lr=learning_rate, weight_decay=weight_decay)
    warmup = max(1, steps // 10)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda s: (
            (s + 1) / warmup if s < warmup else 0.5 * (1 + math.cos(math.pi * (s - warmup) / max(1, steps - warmup)))
        ),
    )
    order: list[int] = []
    losses, accuracies = [], []
    for step in range(1, steps + 1):
        if len(order) < batch_size:
            order += order_rng.sample(range(len(texts)), len(texts))  # epochs of shuffled texts
        batch, order = [texts[i] for i in order[:batch_size]], order[batch_size:]
        ids, attention = pad(tokenizer.documents(batch), tokenizer.pad_id)
        inputs, labels = hide_tokens(ids, attention, mask_rate, protected, hide_with, rng)
        loss, accuracy = masked_lm_loss(encoder, inputs, attention, labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(backbone.parameters(), grad_clip)
        optimizer.step()
        schedule.step()
        losses.append(float(loss.detach()))
        accuracies.append(accuracy)
        if step % log_every == 0 or step == steps:
            log({"pretrain_step": step, "mlm_loss": round(sum(losses) / len(losses), 4),
                 "mlm_accuracy": round(sum(accuracies) / len(accuracies), 4), "lr": schedule.get_last_lr()[0]})
            losses, accuracies = [], []
