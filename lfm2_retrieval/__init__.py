"""lfm2-search: multilingual late-interaction retrieval on the LFM2 backbone."""

import os

# Before torch (and faiss) load GNU OpenMP, which reads this once: how long an idle OpenMP
# worker spins before it sleeps. The default (300,000 spins, about a millisecond) keeps torch's
# workers spinning through the compiled search stages that follow each matrix product, on the
# cores those stages' own threads need; sleeping at once (OMP_WAIT_POLICY=PASSIVE) slows the
# many small operations of query encoding instead; 10,000 spins was the fastest of the values
# tried for encoding and searching one query (docs/benchmarks.md). A value the user set wins;
# this does nothing if torch was imported first.
os.environ.setdefault("GOMP_SPINCOUNT", "10000")

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("lfm2-search")  # what the API, MCP and model cards report
except PackageNotFoundError:  # pragma: no cover - run from a tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = ["ColBERTConfig", "ColBERTEncoder", "__version__"]


def __getattr__(name: str):
    """ColBERTConfig and ColBERTEncoder load torch on first use, not on `import lfm2_retrieval`:
    `lfm2-search --help` and the commands that never encode start without it."""
    if name == "ColBERTConfig":
        from .model.config import ColBERTConfig

        return ColBERTConfig
    if name == "ColBERTEncoder":
        from .model.encoder import ColBERTEncoder

        return ColBERTEncoder
    raise AttributeError(f"module 'lfm2_retrieval' has no attribute {name!r}")
