"""Is the dense head held back by its form or by what the backbone gives it? Heads of several
forms are fitted to the teacher's space on the embedded model's frozen features, then scored on
the dev tasks beside the head the campaign trained (issue 36).

    python -m eval.head_probe --targets 60000 --threads 1

The head the campaign trains is one linear map of the last layer's mean token state (256 -> 384).
With the backbone frozen, a text's pooled features never change, so they are computed once and
every head trains on them in seconds: a head that scores far above the campaign's on the same
features says the head's form was the limit; one that does not says the backbone's features are.

Features of a text: the mean over its kept tokens of the final (normed) hidden state, and of each
layer's output. Heads: linear / MLP (one hidden layer of 1024, GELU) on the final features alone,
and on the final and every layer's features side by side; the campaign's own head fitted
further on the same features; and no head at all (the final state's mean scored as it is).
Targets are drawn like the campaign's (configs/dense-head.toml: NTREX-128 and the TSVs of
parallel text, 3/4 of them; the training pairs' own texts), their teacher vectors read from the
teacher cache (filled where missing). The loss is the campaign's: squared distance of unit
vectors plus in-batch InfoNCE per role.
Scores: NDCG@10 on the trainer's dev tasks (NanoQA dev en/ja/ko, NanoNTREX dev grid across
en/ja/ko/ar), never the evaluation tasks.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from rich.console import Console
from rich.table import Table
from torch import nn

from lfm2_retrieval.model.dense_head import masked_mean

ROOT = Path(__file__).resolve().parents[1]
console = Console(width=None if sys.stdout.isatty() else 160)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path, default=ROOT / "lfm2_retrieval" / "models" / "default")
    p.add_argument("--config", type=Path, default=ROOT / "configs" / "dense-head.toml")
    p.add_argument("--tsv", default="debian.tsv,desktop.tsv", help="the config's dense_parallel_tsv")
    p.add_argument("--targets", type=int, default=60000, help="targets drawn (before removing repeats)")
    p.add_argument("--steps", type=int, default=3000, help="optimiser steps per head")
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--languages", nargs="+", default=["en", "ja", "ko", "ar"])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=4)
    return p.parse_args(argv)


class Features:
    """Mean-pooled states of a frozen encoder: the final (normed) hidden state and each layer's
    output, per text, concatenated [final | layer 1 | ... | layer L]."""

    def __init__(self, encoder) -> None:
        self.encoder = encoder
        self.captured: list[torch.Tensor] = []
        for layer in encoder.backbone.layers:
            layer.register_forward_hook(lambda _m, _i, out: self.captured.append(out))
        self.hidden = encoder.backbone.config.hidden_size

    def __call__(self, texts: list[str], role: str, batch_size: int = 64) -> np.ndarray:
        n_layers = len(self.encoder.backbone.layers)
        out = np.zeros((len(texts), (n_layers + 1) * self.hidden), np.float32)
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))  # like lengths batch together
        for s in range(0, len(order), batch_size):
            rows = order[s: s + batch_size]
            if role == "query":
                inputs, keep = self.encoder.query_inputs([texts[i] for i in rows])
            else:
                inputs, keep = self.encoder.document_inputs(self.encoder.tokenizer.documents([texts[i] for i in rows]))
            self.captured.clear()
            with torch.inference_mode():
                final = self.encoder.hidden_states(**inputs)
            means = [masked_mean(h.float(), keep) for h in [final, *self.captured]]
            out[rows] = torch.cat(means, -1).numpy()
        return out


MLP_WIDTH = 1024


class Head(nn.Module):
    """A candidate dense head over pooled features: their first `width` columns, linear or an MLP
    (one hidden layer of MLP_WIDTH, GELU)."""

    def __init__(self, width: int, dim: int, mlp: bool, start: nn.Linear | None = None) -> None:
        super().__init__()
        self.width = width
        self.net = nn.Sequential(nn.Linear(width, MLP_WIDTH), nn.GELU(), nn.Linear(MLP_WIDTH, dim)) if mlp \
            else nn.Linear(width, dim)
        if start is not None:  # go on from a trained linear head
            self.net.load_state_dict(start.state_dict())

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.net(features[:, : self.width]), dim=-1)


def fit(head: Head, feats: dict, teacher: dict, labels: dict, steps: int, batch: int, lr: float,
        seed: int, temperature: float = 0.05) -> float:
    """The campaign's loss (unit MSE + in-batch InfoNCE, per role), AdamW; the last 100 steps'
    mean loss."""
    opt = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=0.01)
    gen = torch.Generator().manual_seed(seed)
    losses = []
    for step in range(steps):
        total = torch.zeros(())
        for role in ("query", "passage"):
            idx = torch.randint(len(feats[role]), (batch // 2,), generator=gen)
            student = head(feats[role][idx])
            target = teacher[role][idx]
            total = total + ((student - target) ** 2).sum(-1).mean()
            # Rows of one English source share a teacher vector: mask the other copies as negatives.
            lab = labels[role][idx]
            logits = student @ target.T / temperature
            same = (lab[:, None] == lab[None, :]) & ~torch.eye(len(idx), dtype=torch.bool)
            total = total + F.cross_entropy(logits.masked_fill(same, -1e4), torch.arange(len(idx)))
        opt.zero_grad()
        total.backward()
        opt.step()
        for group in opt.param_groups:  # cosine decay to zero
            group["lr"] = lr * 0.5 * (1 + np.cos(np.pi * (step + 1) / steps))
        losses.append(float(total.detach()))
    return float(np.mean(losses[-100:]))


def identity(width: int) -> nn.Linear:
    """A linear map that changes nothing: the pooled features scored as they are."""
    linear = nn.Linear(width, width)
    with torch.no_grad():
        linear.weight.copy_(torch.eye(width))
        linear.bias.zero_()
    return linear


class ProbeRetriever:
    """A fitted head on the frozen features as a retriever (evaluation/retrievers.py's interface)."""

    def __init__(self, features: Features, head: nn.Module, name: str = "probe") -> None:
        self.features, self.head, self.name = features, head, name

    def _vectors(self, texts: list[str], role: str) -> np.ndarray:
        with torch.inference_mode():
            return self.head(torch.from_numpy(self.features(texts, role))).numpy()

    def index(self, corpus: dict[str, str]):
        ids = list(corpus)
        return ids, self._vectors([corpus[i] for i in ids], "document")

    def search(self, handle, queries: dict[str, str], k: int):
        from lfm2_retrieval.evaluation.retrievers import top_k_run

        ids, docs = handle
        qids = list(queries)
        return top_k_run(qids, self._vectors([queries[q] for q in qids], "query") @ docs.T, ids, k)


class CampaignHead(nn.Module):
    """The model's own head (its linear map of the final features), to score beside the fits."""

    def __init__(self, dense_head, width: int) -> None:
        super().__init__()
        self.dense_head, self.width = dense_head, width

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.dense_head.linear(features[:, : self.width]), dim=-1)


def main(argv=None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    from lfm2_retrieval import ColBERTEncoder
    from lfm2_retrieval.evaluation.dev import load_dev_tasks, system_dev_scores
    from lfm2_retrieval.training.config import TrainConfig
    from lfm2_retrieval.training.dense_distillation import STUDENT_ROLE
    from lfm2_retrieval.training.trainer import prepare_data

    cfg = TrainConfig.load(args.config, [f"dense_parallel_tsv={args.tsv}", "hard_negatives=false"])
    started = time.perf_counter()
    _, _, dense = prepare_data(cfg, log=lambda *a, **k: None)
    drawn = list(dict.fromkeys(dense.draw(random.Random(args.seed), args.targets)))
    console.print(f"{len(drawn)} distinct targets ({time.perf_counter() - started:.0f} s to load)")

    encoder = ColBERTEncoder.from_pretrained(str(args.model))
    encoder.eval()
    features = Features(encoder)
    hidden = features.hidden
    feats, teacher, labels = {}, {}, {}
    for role in ("query", "passage"):
        rows = [t for t in drawn if t.role == role]
        t0 = time.perf_counter()
        feats[role] = torch.from_numpy(features([t.text for t in rows], STUDENT_ROLE[role]))
        teacher[role] = torch.from_numpy(dense.cache.get([t.teacher_text for t in rows], role))
        sources = {s: i for i, s in enumerate(dict.fromkeys(t.teacher_text for t in rows))}
        labels[role] = torch.tensor([sources[t.teacher_text] for t in rows])
        console.print(f"{role}: {len(rows)} texts, features in {time.perf_counter() - t0:.0f} s")

    tasks = load_dev_tasks(Path(cfg.shared_data), args.languages)
    width_all = feats["query"].shape[1]
    # (name, head, whether it is fitted here)
    candidates = [("no head: the final state's mean itself", Head(hidden, hidden, False, identity(hidden)), False)]
    if encoder.dense_head is not None:  # a model without a head has only the fresh ones
        own = CampaignHead(encoder.dense_head, hidden)
        candidates.append(("the campaign's head (linear, final state)", own, False))
        candidates.append(("the campaign's head, fitted on", Head(hidden, teacher["query"].shape[1], False,
                                                                   encoder.dense_head.linear), True))
    for name, width, mlp in [("linear, final state", hidden, False), ("MLP, final state", hidden, True),
                             ("linear, final + every layer", width_all, False),
                             ("MLP, final + every layer", width_all, True)]:
        candidates.append((name, Head(width, teacher["query"].shape[1], mlp), True))
    table = Table(title=f"Heads on {args.model.name}'s frozen features: dev NDCG@10")
    for col in ["head", "params", "loss", *[f"qa_{lang}" for lang in args.languages[:3]], "ntrex_cross", "fit s"]:
        table.add_column(col, justify="left" if col == "head" else "right")
    for name, head, fitted in candidates:
        t0 = time.perf_counter()
        loss = float("nan")
        if fitted:
            loss = fit(head, feats, teacher, labels, args.steps, args.batch, args.lr, args.seed)
        head.eval()
        fit_s = time.perf_counter() - t0
        scores = system_dev_scores(ProbeRetriever(features, head, name), *tasks)
        params = sum(p.numel() for p in head.parameters())
        table.add_row(name, f"{params / 1e6:.2f}M", f"{loss:.3f}",
                      *[f"{scores.get(f'qa_{lang}', float('nan')):.3f}" for lang in args.languages[:3]],
                      f"{scores.get('ntrex_cross', float('nan')):.3f}", f"{fit_s:.0f}")
        console.print(name, {k: round(v, 3) for k, v in scores.items()}, f"fit {fit_s:.0f} s")
    console.print(table)


if __name__ == "__main__":
    main()
