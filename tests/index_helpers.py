"""Synthetic token vectors with topic structure, for index tests and benchmarks."""

import numpy as np


def clustered_corpus(n_docs: int, dim: int = 64, n_topics: int = 200, seed: int = 0,
                     min_tokens: int = 8, max_tokens: int = 40, noise: float = 0.35) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    topics = rng.standard_normal((n_topics, dim)).astype(np.float32)
    docs = []
    for _ in range(n_docs):
        n = int(rng.integers(min_tokens, max_tokens + 1))
        # A document mixes a few topics, as real text does.
        own = rng.choice(n_topics, size=3, replace=False)
        v = topics[rng.choice(own, size=n)] + noise * rng.standard_normal((n, dim)).astype(np.float32)
        docs.append(v / np.linalg.norm(v, axis=1, keepdims=True))
    return docs


def queries_from(docs: list[np.ndarray], n: int, n_tokens: int = 16, seed: int = 1, noise: float = 0.2):
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
