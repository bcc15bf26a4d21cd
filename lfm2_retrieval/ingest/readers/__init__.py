"""Turning files into text: one reader per format, each returning `SourceText`s.

Plain text (.txt, .md, .markdown, .rst), HTML (.html, .htm), records (.json, .jsonl, .csv,
.tsv, .parquet) and PDF (.pdf, through pypdf, page numbers kept). A file yields one text, or
one per record. Problems never stop a run: the reader raises `UnreadableFile` with the reason
(binary content, a broken PDF, no text field) and the caller skips the file with a warning;
bad lines of a JSONL file and undecodable bytes are warnings, and the rest is kept.

One module per format behind the suffix registry below: plain.py, markdown.py, html.py,
records.py, pdf.py; base.py holds what they share.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from pathlib import Path

from . import html, markdown, pdf, plain, records
from .base import ReadResult, RecordFields, Scalar, SourceText, UnreadableFile, decode_text
from .html import html_text, html_text_and_sections
from .markdown import markdown_text
from .records import decoded_lines

# Bumped when a reader's output changes, so that `index` reads every file again.
READERS_VERSION = 2

Reader = Callable[[Path, bytes, RecordFields], ReadResult]
_READERS: dict[str, Reader] = {
    **{s: plain.read_plain for s in plain.SUFFIXES},
    **{s: markdown.read_markdown for s in markdown.SUFFIXES},
    **{s: html.read_html for s in html.SUFFIXES},
    ".json": records.read_json,
    **{s: pdf.read_pdf for s in pdf.SUFFIXES},
}
# Record files read a record at a time (stream_file).
_STREAMS = {".jsonl": records.stream_jsonl, ".ndjson": records.stream_jsonl, ".csv": records.stream_csv,
            ".tsv": records.stream_csv, ".parquet": records.stream_parquet}
STREAMED_SUFFIXES = set(_STREAMS)
SUPPORTED_SUFFIXES = set(_READERS) | STREAMED_SUFFIXES

__all__ = ["READERS_VERSION", "STREAMED_SUFFIXES", "SUPPORTED_SUFFIXES", "ReadResult", "RecordFields", "Scalar",
           "SourceText", "UnreadableFile", "decode_text", "decoded_lines", "html_text", "html_text_and_sections",
           "markdown_text", "read_file", "stream_file"]


def read_file(path: Path, data: bytes, fields: RecordFields | None = None) -> ReadResult:
    """Texts of a file whose bytes are `data`, all at once (stream_file reads a record file a
    record at a time)."""
    result = stream_file(path, fields, data)
    result.texts = list(result.texts)
    return result


def stream_file(path: Path, fields: RecordFields | None = None, data: bytes | None = None) -> ReadResult:
    """Texts of a file, read from `data` or else from `path`. For JSON Lines, CSV and Parquet
    `texts` is an iterator that reads the file as it is consumed, and `warnings` fills as it
    goes (read them at its end); other formats are read whole, now. UnreadableFile: the file
    yields nothing (now, or when the iterator finds that no record has text)."""
    suffix = path.suffix.lower()
    fields = fields or RecordFields()
    if suffix in _STREAMS:
        warnings: list[str] = []
        texts = _streamed(path, data, fields, warnings, _STREAMS[suffix])
        return ReadResult(texts, warnings)
    reader = _READERS.get(suffix)
    if reader is None:
        raise UnreadableFile(f"unsupported file type {suffix or '(none)'}")
    result = reader(path, path.read_bytes() if data is None else data, fields)
    result.texts = [t for t in result.texts if t.text.strip()]
    return result


def _streamed(
    path: Path, data: bytes | None, fields: RecordFields, warnings: list[str], stream_reader
) -> Iterator[SourceText]:
    with (io.BytesIO(data) if data is not None else open(path, "rb")) as stream:
        yield from (t for t in stream_reader(stream, path, fields, warnings) if t.text.strip())

