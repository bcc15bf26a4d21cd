"""PDF (.pdf) through pypdf: the pages' text, each page's start kept for page numbers."""

from __future__ import annotations

import contextlib
import io
import logging
from pathlib import Path

from .base import ReadResult, RecordFields, SourceText, UnreadableFile

SUFFIXES = {".pdf"}


def read_pdf(path: Path, data: bytes, fields: RecordFields) -> ReadResult:
    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    warnings: list[str] = []
    with _pypdf_messages(warnings):  # its warnings ("EOF marker not found") name no file: they become this file's
        try:
            reader = PdfReader(io.BytesIO(data))
            if reader.is_encrypted and not reader.decrypt(""):
                raise UnreadableFile("encrypted PDF")
            pages = list(reader.pages)
        except UnreadableFile:
            raise
        except (PyPdfError, ValueError, KeyError, OSError, TypeError) as exc:
            raise UnreadableFile(f"not a readable PDF: {exc}") from None
        return _pdf_text(path, reader, pages, warnings)


@contextlib.contextmanager
def _pypdf_messages(into: list[str]):
    """pypdf's log messages while one file is read, kept as that file's warnings instead of
    printed without its name."""
    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            message = record.getMessage()
            if message not in into:
                into.append(message)

    logger, handler = logging.getLogger("pypdf"), Keep(logging.WARNING)
    propagate = logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate


def _pdf_text(path: Path, reader, pages, warnings: list[str]) -> ReadResult:
    parts: list[str] = []
    starts: list[tuple[int, int]] = []
    offset, failed = 0, 0
    for number, page in enumerate(pages, start=1):
        try:
            text = (page.extract_text() or "").strip()
        except Exception:
            failed += 1
            continue
        if not text:
            continue
        starts.append((offset, number))
        parts.append(text)
        offset += len(text) + 2
    if failed:
        warnings.append(f"{failed} page(s) could not be read")
    if not parts:
        raise UnreadableFile("no extractable text (scanned PDF?)")
    title = ""
    try:
        title = (reader.metadata.title or "") if reader.metadata else ""
    except Exception:
        pass
    return ReadResult([SourceText("\n\n".join(parts), title=str(title) or path.stem, page_starts=starts)], warnings)
