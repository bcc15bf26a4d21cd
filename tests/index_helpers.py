"""Token vectors for index tests: the benchmark's synthetic generator, plus exact MaxSim."""

import numpy as np

from eval.collections.synthetic_vectors import clustered_docs


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


def assert_same_hits(a, b, tol=1e-5):
    """The same ranking: equal scores rank by rank, and the same chunks (with the same stored
    text and metadata) at each score; chunks tied at the cut-off score may differ. Takes Hits
    or the API's hit dictionaries."""
    def fields(h):
        return (h["id"], h["score"], h["text"], h["metadata"]) if isinstance(h, dict) else (h.id, h.score, h.text,
                                                                                             h.metadata)
    a, b = [fields(h) for h in a], [fields(h) for h in b]
    assert np.allclose([h[1] for h in a], [h[1] for h in b], atol=tol), ([h[1] for h in a], [h[1] for h in b])
    if not a:
        return
    cut = min(a[-1][1], b[-1][1]) + tol  # chunks tied at the cut-off may differ
    for mine, theirs in ((a, b), (b, a)):
        other = {h[0]: h for h in theirs}
        for chunk, score, text, metadata in mine:
            if score > cut:
                assert chunk in other, f"{chunk} ({score}) is missing from the other ranking"
                assert abs(other[chunk][1] - score) <= tol, (chunk, score, other[chunk][1])
                assert other[chunk][2:] == (text, metadata), (chunk, other[chunk][2:], (text, metadata))
