"""Token vectors for index tests: the benchmark's synthetic generator, plus exact MaxSim."""

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "eval"))
from synthetic_vectors import clustered_docs  # noqa: E402


def clustered_corpus(n_docs: int, dim: int = 64, seed: int = 0) -> list[np.ndarray]:
    return clustered_docs(n_docs, dim=dim, seed=seed, min_tokens=8, max_tokens=40)


def queries_from(docs: list[np.ndarray], n: int, n_tokens: int = 16, seed: int = 1, noise: float = 0.05):
    """Queries made from perturbed tokens of random documents (so each has real matches)."""
    rng = np.random.default_rng(seed)
    out = []
    for i in rng.choice(len(docs), size=n, replace=False):
        base = docs[i][rng.integers(0, len(docs[i]), size=n_tokens)]
        q = base + noise * rng.standard_normal(base.shape).astype(np.float32)
        out.append(q / np.linalg.norm(q, axis=1, keepdims=True))
    return out


def exhaustive_top(query: np.ndarray, docs: list[np.ndarray], k: int) -> list[int]:
    scores = np.array([(query @ d.T).max(axis=1).sum() for d in docs])
    return list(np.argsort(-scores, kind="stable")[:k])
