"""A PLAID-style compressed multi-vector index on faiss, changed by atomic commits."""

from .codec import ResidualCodec, default_num_centroids
from .filters import FilterError
from .index import Hit, IndexFolderError, IndexWriter, MultiVectorIndex, check_index, repair_index
from .integrity import CheckReport, IndexDamagedError
from .search import SearchParams
from .storage import IndexLockedError

__all__ = ["CheckReport", "FilterError", "Hit", "IndexDamagedError", "IndexFolderError", "IndexLockedError",
           "IndexWriter", "MultiVectorIndex", "ResidualCodec", "SearchParams", "check_index", "default_num_centroids",
           "repair_index"]
