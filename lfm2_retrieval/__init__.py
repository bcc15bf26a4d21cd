"""lfm2-search: multilingual late-interaction retrieval on the LFM2 backbone."""

import os

# Before torch (and faiss) load GNU OpenMP, which reads this once: how long an idle OpenMP
# worker spins before it sleeps. The default (300,000 spins, about a millisecond) keeps torch's
# workers spinning through the compiled search stages that follow each matrix product, on the
# cores those stages' own threads need; sleeping at once (OMP_WAIT_POLICY=PASSIVE) slows the
# many small operations of query encoding instead. On the real collection (2 cores), encoding
# and searching one query: p50 27.5 ms by default, 21.6-23.6 at 10,000, 26.4 at 1,000, 28.3
# passive. A value the user set wins; this does nothing if torch was imported first.
os.environ.setdefault("GOMP_SPINCOUNT", "10000")

from .model.config import ColBERTConfig
from .model.encoder import ColBERTEncoder

__all__ = ["ColBERTConfig", "ColBERTEncoder"]
