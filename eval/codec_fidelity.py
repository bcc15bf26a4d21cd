"""What compression alone costs: recall of exhaustive MaxSim over decompressed vectors.

The index's search finds 0.99+ of what its own exhaustive search finds; what separates it from
exhaustive search over the raw vectors is the codec. This script trains codec variants on real
token vectors (SciFact's abstracts from the embedded model, encoded once and cached by
eval/collections/scifact_vectors.py), compresses and decompresses every token, and ranks the corpus
for each query by exact MaxSim over the decompressed (normalised) vectors: recall@10 and @100
against the raw vectors' ranking, per variant, side by side.

    .venv/bin/python -m eval.codec_fidelity                       # all variants, nbits 4
    .venv/bin/python -m eval.codec_fidelity --nbits 2,4 --variants current,flat

Variants: `current` (the codec as the index trains it), `plaid` (with ColBERTv2/PLAID's
centroid count, the index's rule before session 15), `per-dim` (PLAID's count, with bucket
cutoffs and weights of each dimension's own instead of one set for all), `flat` (one-level
k-means over all centroids instead of two levels above 4,096), `iter20` (20 k-means iterations
instead of 10), `k2x`, `k4x` (twice, four times PLAID's count); `NAME:SEED` trains NAME with
another seed (the spread between seeds is what a difference between variants must exceed).
"""

from __future__ import annotations

import argparse
import time

import lfm2_retrieval  # noqa: F401 - before torch: its OpenMP settings

import numpy as np

from lfm2_retrieval.index import codec as codec_module
from lfm2_retrieval.index.codec import ResidualCodec, default_num_centroids, plaid_num_centroids

from eval.collections import Collection, ground_truth
from eval.measure import recall
from eval.collections.scifact_vectors import scifact_vectors


def ranking(docs: list[np.ndarray], queries: list[np.ndarray], k: int) -> list[list[int]]:
    """Each query's best k documents by exact MaxSim (bench_index's exhaustive search over raw vectors)."""
    return ground_truth(Collection("SciFact", len(docs), sum(len(d) for d in docs), queries,
                                   lambda: iter([(0, docs)]), dim=docs[0].shape[1]), k)


def per_dimension_round_trip(codec: ResidualCodec, tokens: np.ndarray, seed: int = 0) -> np.ndarray:
    """Decompressed tokens if each dimension had its own bucket cutoffs and weights (quantiles of
    that dimension's residuals over a held-out sample), the codec's centroids otherwise."""
    sample = tokens[np.random.default_rng(seed).choice(len(tokens), min(len(tokens), 50_000), replace=False)]
    residuals = sample - codec.centroids[codec.assign(sample)]
    levels = 1 << codec.nbits
    cutoffs = np.quantile(residuals, np.arange(1, levels) / levels, axis=0).T.astype(np.float32)  # [dim, levels-1]
    weights = np.quantile(residuals, (np.arange(levels) + 0.5) / levels, axis=0).T.astype(np.float32)
    codes = codec.assign(tokens)
    out = np.empty_like(tokens)
    for d in range(tokens.shape[1]):
        r = tokens[:, d] - codec.centroids[codes, d]
        out[:, d] = codec.centroids[codes, d] + weights[d, np.searchsorted(cutoffs[d], r)]
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def train(variant: str, tokens: np.ndarray, nbits: int) -> ResidualCodec:
    """The codec of `variant`, or of `variant:seed` (the same with another k-means seed)."""
    variant, _, seed = variant.partition(":")
    seed = int(seed or 0)
    k = plaid_num_centroids(len(tokens))
    if variant == "current":
        return ResidualCodec.train(tokens, nbits, num_centroids=default_num_centroids(len(tokens)), seed=seed)
    if variant in ("plaid", "per-dim"):
        return ResidualCodec.train(tokens, nbits, num_centroids=k, seed=seed)
    if variant.startswith("k") and variant.endswith("x"):  # k2x, k4x: that many times PLAID's centroids
        return ResidualCodec.train(tokens, nbits, num_centroids=int(variant[1:-1]) * k, seed=seed)
    if variant == "iter20":
        return ResidualCodec.train(tokens, nbits, num_centroids=k, niter=20, seed=seed)
    if variant == "flat":
        original = codec_module.train_centroids

        def flat(points, k, niter=10, seed=0, flat_limit=4096):
            return original(points, k, niter=niter, seed=seed, flat_limit=max(k, flat_limit))

        codec_module.train_centroids = flat
        try:
            return ResidualCodec.train(tokens, nbits, num_centroids=k, seed=seed)
        finally:
            codec_module.train_centroids = original
    raise SystemExit(f"unknown variant {variant!r}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--first-query", type=int, default=0, help="queries from this one of queries.jsonl on (the "
                        "index benchmarks report the first 100; choose settings on others, e.g. 300)")
    parser.add_argument("--nbits", default="4")
    parser.add_argument("--variants", default="current,plaid,per-dim,flat,iter20,k4x")
    args = parser.parse_args()
    found = scifact_vectors(args.queries, args.first_query)
    if found is None:
        raise SystemExit("needs ../shared/data/beir/scifact and a model (the embedded one, or $LFM2_SEARCH_MODEL)")
    docs, queries, _ = found
    tokens = np.concatenate(docs)
    bounds = np.cumsum([0] + [len(d) for d in docs])
    truth = ranking(docs, queries, 100)
    print(f"SciFact: {len(docs)} chunks, {len(tokens)} tokens, {tokens.shape[1]}-d, {len(queries)} queries "
          f"(from number {args.first_query}), {default_num_centroids(len(tokens))} centroids by default "
          f"(PLAID's rule: {plaid_num_centroids(len(tokens))})\n")
    print("| variant | nbits | train s | mean cos | R@10 | R@100 |")
    print("|---|---:|---:|---:|---:|---:|")
    for nbits in [int(b) for b in args.nbits.split(",")]:
        for variant in [v.strip() for v in args.variants.split(",") if v.strip()]:
            t = time.perf_counter()
            codec = train(variant, tokens, nbits)
            train_s = time.perf_counter() - t
            decoded = (per_dimension_round_trip(codec, tokens) if variant.startswith("per-dim")
                       else codec.decompress(*codec.compress(tokens), normalize=True))
            cos = float(np.mean(np.einsum("ij,ij->i", decoded, tokens)))
            got = ranking(np.split(decoded, bounds[1:-1]), queries, 100)
            print(f"| {variant} | {nbits} | {train_s:.1f} | {cos:.4f} | {recall(got, truth, 10):.3f} | "
                  f"{recall(got, truth, 100):.3f} |", flush=True)


if __name__ == "__main__":
    main()
