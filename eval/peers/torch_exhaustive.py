"""Exhaustive MaxSim in torch over the raw fp32 vectors: the exact reference."""

from __future__ import annotations

import time

import torch

from eval.collections import Collection
from eval.measure import row, time_queries


def bench_exhaustive_torch(col: Collection) -> dict:
    t = time.perf_counter()
    docs = [d for _, chunk in col.chunks() for d in chunk]
    lengths = torch.tensor([len(d) for d in docs])
    padded = torch.nn.utils.rnn.pad_sequence([torch.from_numpy(d) for d in docs], batch_first=True)
    mask = torch.arange(padded.shape[1])[None, :] < lengths[:, None]
    build = time.perf_counter() - t

    def search(q, k):
        sims = torch.einsum("qd,ntd->nqt", torch.from_numpy(q), padded).masked_fill(~mask[:, None, :], -1e9)
        return sims.max(-1).values.sum(-1).topk(k).indices.tolist()

    search(col.queries[0], 10)  # warm up
    lat10, res10 = time_queries(lambda q: search(q, 10), col.queries)
    _, res100 = time_queries(lambda q: search(q, 100), col.queries)
    return row("exhaustive MaxSim (torch, fp32)", build, 4 * col.dim, lat10, res10, res100, col, "raw vectors in RAM")


