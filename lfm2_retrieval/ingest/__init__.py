"""From files to indexed chunks: readers per format and the incremental pipeline."""

from .pipeline import IngestOptions, IngestReport, Ingestor
from .readers import SUPPORTED_SUFFIXES, RecordFields, SourceText, UnreadableFile, read_file
from .sources import PathView, source_name

__all__ = ["IngestOptions", "IngestReport", "Ingestor", "PathView", "RecordFields", "SUPPORTED_SUFFIXES", "SourceText",
           "UnreadableFile", "read_file", "source_name"]
