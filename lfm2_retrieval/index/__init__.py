"""Vectors -> codes -> candidates -> scores: a PLAID-style compressed multi-vector index on
faiss, with a BM25 side, changed only by atomic commits.

    manifest.py   what one commit is made of (typed; the on-disk format and its versions)
    codec.py      centroids and packed residuals: token vectors to codes and back
    segment.py    immutable segments: codes, inverted file, chunk table (a document's metadata
                  once), BM25 (lexical.py) of terms made per language (analysis.py, language.py)
    postings.py   Elias-Fano coded inverted-file lists
    snapshot.py   one commit opened for searching, after the cheap integrity checks
    search.py     candidates (centroid interaction) -> approximate scores -> exact MaxSim
    kernels.py    the compiled scoring loops
    filters.py    metadata filters, evaluated on the chunk table
    index.py      MultiVectorIndex: the reader, and the entry to writing
    writer.py     IndexWriter: staging, commits, merges, optimize
    integrity.py  checksums and structural invariants; checking.py: `check` and `check --repair`
    storage.py    durable files: atomic JSON, fsync'd folder publishing, the writer lock
"""

from ..errors import FilterError, IndexDamagedError, IndexFolderError, IndexLockedError
from .checking import check_index, repair_index
from .codec import ResidualCodec, default_num_centroids
from .index import MultiVectorIndex
from .integrity import CheckReport
from .manifest import Counts, Manifest, SegmentEntry
from .search import SearchParams
from .segment import ChunkMetadata
from .snapshot import Hit
from .writer import IndexWriter

__all__ = [
    "CheckReport",
    "ChunkMetadata",
    "Counts",
    "FilterError",
    "Hit",
    "IndexDamagedError",
    "IndexFolderError",
    "IndexLockedError",
    "IndexWriter",
    "Manifest",
    "MultiVectorIndex",
    "ResidualCodec",
    "SearchParams",
    "SegmentEntry",
    "check_index",
    "default_num_centroids",
    "repair_index",
]
