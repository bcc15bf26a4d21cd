"""Where a search spends its time: each stage's time per query on a kept index.

Times the query plan (centroid scores and the probe scan), stage 1 (probed lists and their
estimates), stage 2 (centroid interaction), stage 3 (exact MaxSim) and the hits' payload, for
synthetic queries (eval/collections/synthetic_vectors.py, as bench_index.py asks them) on an index that
`bench_index.py --keep` built, and recall@10 against the index's own exhaustive search (cached
beside this script's output, it takes a while at 1M chunks). --code runs another checkout's
lfm2_retrieval (a git worktree of an older commit) on the same index, for a side-by-side:

    .venv/bin/python -m eval.search_stages eval/out/synth-1m/ours-4-synthetic-1m --truth 10
    git worktree add /tmp/old HEAD~1
    .venv/bin/python -m eval.search_stages eval/out/synth-1m/ours-4-synthetic-1m --code /tmp/old

Stage 1's per-segment work runs on both cores, so its two parts are summed over threads.
"""

from __future__ import annotations

import argparse
import collections
import json
import statistics
import sys
import time
from pathlib import Path

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("index", type=Path)
parser.add_argument("--queries", type=int, default=20)
parser.add_argument("--truth", type=int, default=0, help="queries whose own exhaustive search gives recall@10")
parser.add_argument("--code", type=Path, help="a checkout whose lfm2_retrieval to time (default this one)")
parser.add_argument("--real-queries", type=int, metavar="PER_LANGUAGE", help="the real collection's queries "
                    "(eval.collections.index_queries: 20 SciFact, this many a QA language), encoded by the index's "
                    "model, instead of synthetic ones (for an index of real vectors)")
args = parser.parse_args()
# --code times another checkout's lfm2_retrieval: it must come first on the path before the
# imports below, which is why they follow the argument parsing.
sys.path.insert(0, str((args.code or Path(__file__).resolve().parents[1]).resolve()))

import numpy as np  # noqa: E402 - after --code, as said above

from eval.collections.synthetic_vectors import clustered_queries, topic_pool  # noqa: E402 - after --code, as said above
from lfm2_retrieval.index import MultiVectorIndex  # noqa: E402 - after --code, as said above
from lfm2_retrieval.index import search as search_module  # noqa: E402 - after --code, as said above
from lfm2_retrieval.index.segment import Segment  # noqa: E402 - after --code, as said above

spent: dict[str, float] = {}


def timed(owner, name: str, label: str) -> None:
    """Wrap owner.name so that each call adds its seconds to spent[label]."""
    original = owner.__dict__[name] if isinstance(owner.__dict__.get(name), staticmethod) else getattr(owner, name)
    inner = original.__func__ if isinstance(original, staticmethod) else original

    def wrapper(*a, **k):
        t = time.perf_counter()
        try:
            return inner(*a, **k)
        finally:
            spent[label] = spent.get(label, 0.0) + time.perf_counter() - t

    setattr(owner, name, staticmethod(wrapper) if isinstance(original, staticmethod) else wrapper)


STAGES = [
    (search_module.QueryPlan, "__init__", "query plan (scores, probe scan)"),
    (Segment, "ivf_lookup", "stage 1: list decoding (thread sum)"),
    (search_module.kernels, "probed_estimates", "stage 1: estimates (thread sum)"),
    (search_module, "_best_across", "cuts between stages"),
    (search_module.kernels, "centroid_interaction_each", "stage 2: centroid interaction"),
    (search_module, "_exact_top", "stage 3: exact MaxSim"),
    (MultiVectorIndex, "_hits", "hits (payload)"),
]

index = MultiVectorIndex(args.index)
if args.real_queries:
    from eval.collections import index_queries

    from lfm2_retrieval import ColBERTEncoder
    encoder = ColBERTEncoder.from_pretrained(index.manifest.model_source)
    queries = [np.asarray(q, np.float32) for q in encoder.encode_queries(index_queries(args.real_queries))]
    args.queries = len(queries)
else:
    queries = clustered_queries(args.queries, index.dim, topics=topic_pool(index.dim))
for q in queries[:3]:
    index.search(q, k=10)  # compiled kernels load from numba's cache
for owner, name, label in STAGES:
    timed(owner, name, label)
per_stage, totals, found = collections.defaultdict(list), [], []
for q in queries:
    spent.clear()
    t = time.perf_counter()
    found.append([h.id for h in index.search(q, k=10)])
    totals.append(time.perf_counter() - t)
    for label, seconds in spent.items():
        per_stage[label].append(seconds)

kind = f"real-{args.real_queries}" if args.real_queries else str(args.queries)
truth_file = args.index.parent / f"{args.index.name}.stages-truth-{kind}.json"
truth = json.loads(truth_file.read_text()) if truth_file.exists() else []
if len(truth) < args.truth:
    for q in queries[len(truth):args.truth]:
        truth.append([h.id for h in index.search(q, k=10, exhaustive=True)])
    truth_file.write_text(json.dumps(truth))
stats = index.stats()
print(f"{args.index} ({stats['chunks']} chunks, {stats['segments']} segments, {stats['centroids']} centroids); "
      f"code {Path(search_module.__file__).parents[2]}; {len(queries)} queries of "
      f"{statistics.median(len(q) for q in queries):.0f} tokens (median)")
print("\n| stage | p50 ms | max ms |\n|---|---:|---:|")
for label in [label for _, _, label in STAGES if label in per_stage]:
    print(f"| {label} | {1e3 * statistics.median(per_stage[label]):.1f} | {1e3 * max(per_stage[label]):.1f} |")
print(f"| **whole search** | **{1e3 * statistics.median(totals):.1f}** | {1e3 * max(totals):.1f} |")
if args.truth:
    r10 = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(found, truth[:args.truth])])
    print(f"\nQPS {len(totals) / sum(totals):.1f}; recall@10 against its own exhaustive search {r10:.3f} "
          f"({args.truth} queries)")
