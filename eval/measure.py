"""What every index benchmark measures the same way: latency per query, recall against the
exact top-k, peak memory, and one table row per system."""

from __future__ import annotations

import resource
import statistics
import time

import numpy as np

def recall(got: list[list[int]], truth: list[list[int]], k: int) -> float:
    return float(np.mean([len(set(g[:k]) & set(t[:k])) / k for g, t in zip(got, truth)]))


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6


def time_queries(search, queries) -> tuple[list[float], list]:
    lat, out = [], []
    for q in queries:
        t = time.perf_counter()
        out.append(search(q))
        lat.append(time.perf_counter() - t)
    return lat, out


def row(system, build_s, bytes_per_token, lat10, res10, res100, col, note="") -> dict:
    return {"collection": col.name, "system": system, "build_s": build_s, "bytes_per_token": bytes_per_token,
            "p50_ms": 1000 * statistics.median(lat10), "p95_ms": 1000 * float(np.percentile(lat10, 95)),
            "qps": len(lat10) / sum(lat10), "recall@10": recall(res10, col.truth[10], 10) if 10 in col.truth else None,
            "recall@100": recall(res100, col.truth[100], 100) if res100 is not None and 100 in col.truth else None,
            "note": note}


