"""The peers of eval/bench_index.py, by name (its --peers): each builds its index of a Collection,
searches its queries one at a time, and returns a table row (eval/measure.py).

    pylate_indexes.py        pylate PLAID (use_fast=False) and Voyager (HNSW)
    lancedb_multivector.py   LanceDB's multivector column: flat, IVF_PQ, IVF_PQ searched wider
    fast_plaid_runner.py     fast-plaid, in .venv-fast-plaid (fast_plaid_peer.py runs there)
    torch_exhaustive.py      exhaustive MaxSim in torch: the exact reference
"""

from __future__ import annotations

from .fast_plaid_runner import bench_fast_plaid
from .lancedb_multivector import bench_lancedb
from .pylate_indexes import bench_pylate

PEERS = {"plaid": lambda col, work, timeout: bench_pylate(col, "plaid", work),
         "fast-plaid": lambda col, work, timeout: bench_fast_plaid(col, work, timeout=timeout),
         "voyager": lambda col, work, timeout: bench_pylate(col, "voyager", work),
         "lancedb": lambda col, work, timeout: bench_lancedb(col, work, indexed=False),
         "lancedb-ivfpq": lambda col, work, timeout: bench_lancedb(col, work, indexed=True),
         # Searched wider, and re-scored on the stored vectors: LanceDB's own recall knobs.
         "lancedb-ivfpq-wide": lambda col, work, timeout: bench_lancedb(col, work, indexed=True, nprobes=64,
                                                                        refine_factor=10)}


SLOW_BUILDS = {"fast-plaid", "plaid"}  # k-means and assignment over every token, on the CPU


