"""ColBERTv2 residual compression: a centroid id plus an nbits-per-dimension residual per token.

Training (`ResidualCodec.train`): k-means with faiss on a sample of token vectors (centroids
are then L2-normalised, as ColBERTv2 does), then bucket cutoffs and weights learned from the
residuals of held-out tokens: cutoffs are the quantiles that split residual values into 2^nbits
equally likely buckets, weights the quantiles at the middle of each bucket.

A token is stored as `code` (uint16, or uint32 past 65,536 centroids) and `dim * nbits / 8`
packed bytes. Decompression is a table look-up (one row of bucket weights per possible byte)
plus the centroid, so it is exact: the same bytes always give the same vector.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..lazy import lazy_module
from .storage import load_npy, save_npy

torch = lazy_module("torch")  # the semantic path only: a lexical search never loads it
kernels = lazy_module("lfm2_retrieval.index.kernels")
faiss = lazy_module("faiss")  # k-means and assignment, when writing: a search never loads it

SUPPORTED_NBITS = (1, 2, 4)


def plaid_num_centroids(n_tokens: int) -> int:
    """ColBERTv2/PLAID's rule (fast-plaid's too): 2^floor(log2(16 * sqrt(n_tokens)))."""
    return 2 ** int(math.floor(math.log2(16 * math.sqrt(max(n_tokens, 1)))))


# Codes are 2 bytes up to this many centroids, 4 above (and stage 2's table of centroid scores
# leaves the 16 MB L3 cache of the machines measured here).
UINT16_CENTROIDS = 1 << 16


def default_num_centroids(n_tokens: int) -> int:
    """Twice PLAID's count while that fits 2-byte codes, PLAID's count above. Compression is
    what separates this index from exhaustive MaxSim over raw vectors, and the centroid count is
    its lever (eval/codec_fidelity.py, SciFact's 868k real tokens, nbits 4, exact MaxSim over
    decompressed vectors): recall@10 0.911-0.922 with PLAID's 8,192 (three seeds; dev and test
    queries), 0.926-0.931 with 16,384; recall@100 0.934-0.943 -> 0.945-0.953. Per-dimension
    buckets and more k-means iterations did not help. docs/benchmarks.md has the search's side."""
    plaid = plaid_num_centroids(n_tokens)
    return 2 * plaid if 2 * plaid <= UINT16_CENTROIDS else plaid


@dataclass
class ResidualCodec:
    centroids: np.ndarray  # [K, dim] float32, unit rows
    cutoffs: np.ndarray  # [2^nbits - 1] float32
    weights: np.ndarray  # [2^nbits] float32
    nbits: int

    def __post_init__(self) -> None:
        if self.nbits not in SUPPORTED_NBITS:
            raise ValueError(f"nbits must be one of {SUPPORTED_NBITS}, not {self.nbits}")
        if (self.dim * self.nbits) % 8:
            raise ValueError(f"dim * nbits must be a multiple of 8 (dim={self.dim}, nbits={self.nbits})")
        self._assigner: _CentroidAssigner | None = None  # built on first compress: readers never need it
        self._centroids_bf16: torch.Tensor | None = None  # built on first search, where the CPU wants it
        per_byte = 8 // self.nbits
        # For every byte value, the residual values of the `per_byte` dimensions it packs
        # (most significant bits first).
        shifts = np.arange(per_byte - 1, -1, -1) * self.nbits
        buckets = (np.arange(256)[:, None] >> shifts[None, :]) & ((1 << self.nbits) - 1)
        self._byte_table = self.weights[buckets].astype(np.float32)  # [256, per_byte]

    @property
    def byte_table(self) -> np.ndarray:
        """[256, dims per byte]: the residual values a packed byte stands for."""
        return self._byte_table

    @property
    def centroids_bf16(self) -> torch.Tensor:
        """The centroids in bfloat16, for the query plan's product where the CPU multiplies
        bfloat16 natively (search.centroid_scores); made on first use."""
        if self._centroids_bf16 is None:
            self._centroids_bf16 = torch.from_numpy(self.centroids).to(torch.bfloat16)
        return self._centroids_bf16

    @property
    def dim(self) -> int:
        return self.centroids.shape[1]

    @property
    def num_centroids(self) -> int:
        return self.centroids.shape[0]

    @property
    def code_dtype(self) -> np.dtype:
        return np.dtype(np.uint16 if self.num_centroids <= 1 << 16 else np.uint32)

    @property
    def bytes_per_token(self) -> int:
        return self.dim * self.nbits // 8 + self.code_dtype.itemsize

    # ------------------------------------------------------------------ training
    @classmethod
    def train(cls, sample: np.ndarray, nbits: int, num_centroids: int | None = None, seed: int = 0,
              niter: int = 10, heldout_fraction: float = 0.05) -> "ResidualCodec":
        """Learn centroids and buckets from a sample of token vectors `[n, dim]`."""
        sample = np.ascontiguousarray(sample, dtype=np.float32)
        n, dim = sample.shape
        if n == 0:
            raise ValueError("cannot train a codec on zero vectors")
        rng = np.random.default_rng(seed)
        sample = sample[rng.permutation(n)]
        n_heldout = min(max(int(n * heldout_fraction), 1), 50_000) if n > 1 else 0
        train, heldout = sample[n_heldout:], sample[:n_heldout] if n_heldout else sample
        k = num_centroids or default_num_centroids(n)
        k = max(1, min(k, len(train)))
        centroids = train_centroids(train, k, niter=niter, seed=seed)
        residuals = heldout - centroids[_CentroidAssigner(centroids).nearest(heldout)]
        levels = 1 << nbits
        values = residuals.ravel()
        cutoffs = np.quantile(values, np.arange(1, levels) / levels).astype(np.float32)
        weights = np.quantile(values, (np.arange(levels) + 0.5) / levels).astype(np.float32)
        return cls(centroids.astype(np.float32), cutoffs, weights, nbits)

    # ------------------------------------------------------------------ compression
    def assign(self, vectors: np.ndarray) -> np.ndarray:
        if self._assigner is None:  # (above 4k centroids it groups them with a small k-means: seconds)
            self._assigner = _CentroidAssigner(self.centroids)
        return self._assigner.nearest(vectors).astype(self.code_dtype)

    def compress(self, vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(codes [n], packed residuals [n, dim*nbits/8] uint8) for vectors [n, dim]."""
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        codes = self.assign(vectors)
        return codes, kernels.pack_residuals(vectors, codes, self.centroids, self.cutoffs, self.nbits)

    def decompress(self, codes: np.ndarray, packed: np.ndarray, normalize: bool = False) -> np.ndarray:
        """Vectors [n, dim] float32: centroid plus bucket weights, exactly.

        normalize: L2-normalise them, as ColBERTv2 does before scoring (token vectors are unit
        length; quantisation error otherwise shows up as spurious norm differences).
        """
        # np.take is an order of magnitude faster than fancy indexing for these gathers.
        vectors = np.take(self._byte_table, packed, axis=0).reshape(len(codes), self.dim)
        vectors += np.take(self.centroids, codes, axis=0)
        if normalize:
            norms = np.sqrt(np.einsum("ij,ij->i", vectors, vectors))
            vectors /= np.maximum(norms, 1e-12)[:, None]
        return vectors

    # ------------------------------------------------------------------ persistence
    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        save_npy(folder / "centroids.npy", self.centroids)
        meta = {"nbits": self.nbits, "cutoffs": self.cutoffs.tolist(), "weights": self.weights.tolist()}
        (folder / "codec.json").write_text(json.dumps(meta), encoding="utf-8")

    @classmethod
    def load(cls, folder: Path) -> "ResidualCodec":
        meta = json.loads((folder / "codec.json").read_text(encoding="utf-8"))
        centroids = load_npy(folder / "centroids.npy")
        return cls(centroids, np.asarray(meta["cutoffs"], np.float32), np.asarray(meta["weights"], np.float32),
                   int(meta["nbits"]))


def _kmeans(points: np.ndarray, k: int, niter: int, seed: int) -> np.ndarray:
    kmeans = faiss.Kmeans(points.shape[1], k, niter=niter, seed=seed, spherical=True,
                          max_points_per_centroid=256, min_points_per_centroid=1, verbose=False)
    kmeans.train(np.ascontiguousarray(points))
    return kmeans.centroids


def train_centroids(points: np.ndarray, k: int, niter: int = 10, seed: int = 0,
                    flat_limit: int = 4096) -> np.ndarray:
    """k unit-norm centroids. Plain k-means up to `flat_limit`; above it two-level k-means
    (sqrt(k) coarse clusters, then each split in proportion to its size), which costs
    2 * sqrt(k) instead of k distance computations per point and iteration."""
    if k <= flat_limit or len(points) < 4 * k:
        centroids = _kmeans(points, k, niter, seed)
    else:
        n_coarse = int(math.sqrt(k))
        coarse = _kmeans(points, n_coarse, niter, seed)
        assignment = _CentroidAssigner(coarse / np.linalg.norm(coarse, axis=1, keepdims=True)).nearest(points)
        sizes = np.bincount(assignment, minlength=n_coarse)
        # Largest-remainder split of k across coarse clusters, at least one each when non-empty.
        share = sizes / sizes.sum() * k
        counts = np.floor(share).astype(int)
        counts[np.argsort(share - counts)[::-1][: k - counts.sum()]] += 1
        parts = []
        for c in range(n_coarse):
            members = points[assignment == c]
            want = min(int(counts[c]), len(members))
            if want == 0:
                continue
            parts.append(members if want == len(members) else _kmeans(members, want, niter, seed + c))
        centroids = np.concatenate(parts)
    return (centroids / np.linalg.norm(centroids, axis=1, keepdims=True).clip(1e-12)).astype(np.float32)


class _CentroidAssigner:
    """Most similar centroid (inner product) of each vector.

    Exact (a flat faiss index) up to `EXACT_LIMIT` centroids. Beyond that a brute-force pass
    costs n * K * dim multiply-adds (540 TFLOP for 32M tokens and 65k centroids, over an hour
    on two cores), so the centroids are grouped under about 2 * sqrt(K) coarse centroids, and a
    vector is compared with the members of its `PROBE` nearest groups only (3% of 65k
    centroids). The comparisons run as one matrix product per group, over every vector of the
    batch that probes it, so they go at BLAS speed: 3.4x faster than a faiss IVF over the
    centroids, which scans list by list for each vector. A vector may then get a near-best
    centroid (0.1% of SciFact's token vectors at 8k centroids, with a mean similarity loss of
    0.0001; 1.5% on the small synthetic test corpus); its residual absorbs the difference, and
    decompression is unaffected.
    """

    EXACT_LIMIT = 4096  # above this many centroids, grouping by probe beats the exact search
    PROBE = 16

    def __init__(self, centroids: np.ndarray) -> None:
        k, dim = centroids.shape
        self.centroids = np.ascontiguousarray(centroids, dtype=np.float32)
        self.flat = faiss.IndexFlatIP(dim)
        if k <= self.EXACT_LIMIT:
            self.flat.add(self.centroids)
            return
        n_groups = int(2 * math.sqrt(k))
        groups = _kmeans(self.centroids, n_groups, niter=10, seed=0)
        groups /= np.linalg.norm(groups, axis=1, keepdims=True).clip(1e-12)
        self.flat.add(groups)
        _, group_of = self.flat.search(self.centroids, 1)
        self.member_order = np.argsort(group_of[:, 0], kind="stable")
        self.group_bounds = np.searchsorted(group_of[self.member_order, 0], np.arange(n_groups + 1))
        self.members = torch.from_numpy(self.centroids[self.member_order])  # grouped, contiguous

    def nearest(self, vectors: np.ndarray, batch: int = 1 << 16) -> np.ndarray:
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        out = np.empty(len(vectors), dtype=np.int64)
        for start in range(0, len(vectors), batch):
            chunk = vectors[start:start + batch]
            if self.flat.ntotal == len(self.centroids):
                out[start:start + len(chunk)] = self.flat.search(chunk, 1)[1][:, 0]
            else:
                out[start:start + len(chunk)] = self._nearest_grouped(chunk)
        return out

    def _nearest_grouped(self, vectors: np.ndarray) -> np.ndarray:
        n, n_groups = len(vectors), len(self.group_bounds) - 1
        probe = min(self.PROBE, n_groups)
        _, probed = self.flat.search(vectors, probe)  # [n, probe] group ids
        by_group = np.argsort(probed.ravel(), kind="stable")
        vector_of = by_group // probe  # vectors, grouped by the group they probe
        starts = np.searchsorted(probed.ravel()[by_group], np.arange(n_groups + 1))
        best_score = np.full(n, -np.inf, dtype=np.float32)
        best = np.zeros(n, dtype=np.int64)
        x = torch.from_numpy(vectors)
        for g in range(n_groups):
            lo, hi = self.group_bounds[g], self.group_bounds[g + 1]
            if starts[g] == starts[g + 1] or lo == hi:
                continue
            rows = vector_of[starts[g]:starts[g + 1]]  # each vector probes a group at most once
            score, arg = (x[rows] @ self.members[lo:hi].T).max(dim=1)
            score = score.numpy()
            better = score > best_score[rows]
            best_score[rows[better]] = score[better]
            best[rows[better]] = arg.numpy()[better] + lo
        return self.member_order[best]
