"""From files to indexed chunks: readers per format and the incremental pipeline."""

from .pipeline import IngestOptions, IngestReport, Ingestor, source_name
from .readers import SUPPORTED_SUFFIXES, RecordFields, SourceText, UnreadableFile, read_file

__all__ = ["IngestOptions", "IngestReport", "Ingestor", "RecordFields",
           "SUPPORTED_SUFFIXES", "SourceText", "UnreadableFile", "read_file", "source_name"]
