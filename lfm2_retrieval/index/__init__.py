"""A PLAID-style compressed multi-vector index on faiss, changed by atomic commits."""

from .codec import ResidualCodec, default_num_centroids
from .filters import FilterError
from .index import Hit, IndexFolderError, IndexWriter, MultiVectorIndex
from .search import SearchParams
from .storage import IndexLockedError

__all__ = ["FilterError", "Hit", "IndexFolderError", "IndexLockedError", "IndexWriter", "MultiVectorIndex",
           "ResidualCodec", "SearchParams", "default_num_centroids"]
