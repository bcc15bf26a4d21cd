"""Synthetic ColBERT-like token vectors, generated in reproducible chunks.

Real late-interaction vectors are term-specific: a query term matches the same term in a
document far better than a related one. So the generator has two levels: topics, and under each
topic a vocabulary of terms (related to the topic, distinct from each other). A document picks
three topics and draws each token's term from them with Zipf frequencies; a token is its term
plus a little noise. Queries draw terms from two topics the same way. MaxSim then ranks by term
overlap, as on real text, instead of by noise among near-identical documents.

Chunks come from (seed, chunk number), so a million documents never need to sit in memory:
regenerate a chunk to read it again.
"""

from __future__ import annotations

import numpy as np

N_TOPICS = 1000
TERMS_PER_TOPIC = 64


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def topic_pool(dim: int, n_topics: int = N_TOPICS, terms_per_topic: int = TERMS_PER_TOPIC, seed: int = 0) -> np.ndarray:
    """Term vectors, [n_topics, terms_per_topic, dim]: each term is its topic plus its own direction."""
    rng = np.random.default_rng(seed)
    topics = _unit(rng.standard_normal((n_topics, 1, dim)))
    own = _unit(rng.standard_normal((n_topics, terms_per_topic, dim)))
    return _unit(topics + 0.8 * own)


def _zipf_terms(rng: np.random.Generator, n: int, terms_per_topic: int) -> np.ndarray:
    p = 1.0 / np.arange(1, terms_per_topic + 1)
    return rng.choice(terms_per_topic, size=n, p=p / p.sum())


def _tokens(rng, terms, topic_of_token, noise) -> np.ndarray:
    term = _zipf_terms(rng, len(topic_of_token), terms.shape[1])
    v = terms[topic_of_token, term] + noise * rng.standard_normal((len(term), terms.shape[2]), dtype=np.float32)
    return _unit(v)


def clustered_docs(n_docs: int, dim: int = 128, seed: int = 0, topics: np.ndarray | None = None,
                   min_tokens: int = 16, max_tokens: int = 48, noise: float = 0.05) -> list[np.ndarray]:
    terms = topic_pool(dim) if topics is None else topics
    rng = np.random.default_rng(seed)
    lengths = rng.integers(min_tokens, max_tokens + 1, size=n_docs)
    own = rng.integers(0, len(terms), size=(n_docs, 3))
    doc_of_token = np.repeat(np.arange(n_docs), lengths)
    topic_of_token = own[doc_of_token, rng.integers(0, 3, size=len(doc_of_token))]
    return np.split(_tokens(rng, terms, topic_of_token, noise), np.cumsum(lengths)[:-1])


def clustered_queries(n: int, dim: int = 128, n_tokens: int = 32, seed: int = 10_000,
                      topics: np.ndarray | None = None, noise: float = 0.08) -> list[np.ndarray]:
    terms = topic_pool(dim) if topics is None else topics
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        own = rng.integers(0, len(terms), size=2)
        out.append(_tokens(rng, terms, own[rng.integers(0, 2, size=n_tokens)], noise))
    return out
