"""Documents <-> chunks: the search engine over one index and one encoder. It chunks documents
(chunking.py), labels their language (index/language.py), fuses semantic and lexical rankings
(fusion.py), explains matches (explain.py), answers one validated SearchRequest (request.py) for
every front end, and is the only writer of an index: the CLI, the
ingestion pipeline and the HTTP API all change an index through its writing sessions."""

from .documents import RESERVED_METADATA, DocumentSummary, PreparedChunk, TextDocument, document_of
from .engine import SearchEngine, WriteSummary
from .request import QueryAnswer, SearchAnswer, SearchRequest
from .session import WriteSession
from ..index.filters import validate as validate_filter

__all__ = ["RESERVED_METADATA", "DocumentSummary", "PreparedChunk", "QueryAnswer", "SearchAnswer", "SearchEngine",
           "SearchRequest", "TextDocument", "WriteSession", "WriteSummary", "document_of", "validate_filter"]
