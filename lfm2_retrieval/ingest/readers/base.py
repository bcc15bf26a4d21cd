"""What every reader returns (SourceText in a ReadResult), what it is told (RecordFields), how it
refuses a file (UnreadableFile), and how bytes become text (decode_text)."""

from __future__ import annotations

import codecs
import json
from collections.abc import Iterable
from dataclasses import dataclass, field

# Metadata values a filter can compare; anything else in a record is stored as JSON text.
Scalar = str | int | float | bool | None


class UnreadableFile(Exception):
    """A file that yields no text; the message says why."""


@dataclass
class RecordFields:
    """Which fields of a record (JSON object, CSV row, Parquet row) hold what."""

    text: str = "text"
    id: str = "id"
    title: str = "title"
    # None: every other scalar field becomes metadata; a list: only these.
    metadata: list[str] | None = None

    def fingerprint(self) -> str:
        return json.dumps([self.text, self.id, self.title, self.metadata])


@dataclass
class SourceText:
    """One text to chunk: a whole file, or one record of a record file."""

    text: str
    title: str = ""
    record_id: str | None = None  # the record's id (or row number) in a record file
    metadata: dict[str, Scalar] = field(default_factory=dict)
    # (character offset, page number) where each PDF page starts, in order.
    page_starts: list[tuple[int, int]] | None = None
    # (character offset, heading path such as "Tutorial > Request Body") where each section of a
    # Markdown or HTML page starts, in order: chunks follow them and carry the path.
    sections: list[tuple[int, str]] | None = None

    def page_at(self, offset: int) -> int | None:
        if not self.page_starts:
            return None
        page = self.page_starts[0][1]
        for start, number in self.page_starts:
            if start > offset:
                break
            page = number
        return page


@dataclass
class ReadResult:
    texts: Iterable[SourceText]  # a list, or an iterator for a record stream (stream_file)
    warnings: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------- decoding
def decode_text(data: bytes) -> tuple[str, list[str]]:
    """Bytes to text: UTF-8 (with or without BOM) or UTF-16 with a BOM; broken bytes replaced."""
    if b"\x00" in data[:8192] and not data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise UnreadableFile("binary content (NUL bytes)")
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return data.decode("utf-16", errors="replace"), []
    try:
        return data.decode("utf-8-sig"), []
    except UnicodeDecodeError as exc:
        text = data.decode("utf-8-sig", errors="replace")
        if not any(ord(c) > 127 and c != "\ufffd" for c in text):
            # Not one valid multi-byte sequence: a legacy 8-bit file, not damaged UTF-8.
            try:
                return data.decode("cp1252"), ["not UTF-8; read as Windows-1252"]
            except UnicodeDecodeError:
                return data.decode("latin-1"), ["not UTF-8; read as Latin-1"]
        bad = text.count("\ufffd")
        return text, [f"invalid UTF-8 (first at byte {exc.start}); {bad} character(s) replaced with U+FFFD"]

