"""Records: a JSON file read whole, JSON Lines, CSV/TSV and Parquet streamed a record at a time;
one SourceText per record, its fields chosen by RecordFields."""

from __future__ import annotations

import codecs
import csv
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

from .base import ReadResult, RecordFields, Scalar, SourceText, UnreadableFile, decode_text


def _scalar(value: Any) -> Scalar:
    if value is None or isinstance(value, (str, bool)):
        return value
    if isinstance(value, int):
        return value if -(2**63) <= value < 2**63 else str(value)
    if isinstance(value, float):
        return value if value == value and abs(value) != float("inf") else None
    return json.dumps(value, ensure_ascii=False, default=str)


def _record_to_text(record: dict[str, Any], row: int, fields: RecordFields, where: str) -> SourceText:
    if fields.text not in record:
        raise KeyError(f"{where}: no {fields.text!r} field (fields: {', '.join(map(str, list(record)[:10]))}); "
                       "choose one with --text-field")
    text = record[fields.text]
    text = "" if text is None else text if isinstance(text, str) else str(text)
    raw_id = record.get(fields.id, record.get("_id"))
    record_id = str(raw_id) if raw_id not in (None, "") else str(row)
    title = record.get(fields.title)
    names = fields.metadata if fields.metadata is not None else [
        k for k in record if k not in (fields.text, fields.id, "_id", fields.title)]
    metadata = {str(k): _scalar(record[k]) for k in names if k in record}
    return SourceText(text, title="" if title is None else str(title), record_id=record_id, metadata=metadata)


def _record_texts(
    records: Iterable[tuple[int, Any]], fields: RecordFields, warnings: list[str]
) -> Iterator[SourceText]:
    """The texts of (row, record) pairs, one at a time. Problems go to `warnings` as they are
    met (the caller reads them once the stream ends); a stream with no usable record at all
    raises UnreadableFile with the first reason."""
    missing: list[str] = []
    n_missing = 0
    seen: set[str] = set()  # ids must be unique within a file; later duplicates get a number
    yielded = False
    for row, record in records:
        if not isinstance(record, dict):
            warnings.append(f"record {row}: not an object, skipped")
            continue
        try:
            text = _record_to_text(record, row, fields, f"record {row}")
        except KeyError as exc:
            n_missing += 1
            if not missing:
                missing.append(str(exc.args[0]))
            continue
        if text.record_id in seen:
            warnings.append(f"duplicate record id {text.record_id!r}; later copies are numbered")
            text.record_id = f"{text.record_id}~{len(seen)}"
        seen.add(text.record_id)
        yielded = True
        yield text
    if n_missing:
        if not yielded:
            raise UnreadableFile(missing[0])
        warnings.append(f"{n_missing} record(s) without a {fields.text!r} field skipped (first: {missing[0]})")


def read_json(path: Path, data: bytes, fields: RecordFields) -> ReadResult:
    # A JSON document is parsed whole (the standard library has no incremental parser); JSON
    # Lines, CSV and Parquet are read as streams (below).
    raw, warnings = decode_text(data)
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError) as exc:  # malformed; a 5,000-digit number; nesting too deep
        raise UnreadableFile(f"invalid JSON: {_short(exc)}") from None
    if isinstance(value, dict) and fields.text not in value:
        # {"documents": [...]} and the like: the one list of objects inside.
        lists = [v for v in value.values() if isinstance(v, list) and v and isinstance(v[0], dict)]
        if len(lists) == 1:
            value = lists[0]
    records = value if isinstance(value, list) else [value]
    return ReadResult(list(_record_texts(enumerate(records), fields, warnings)), warnings)


def _short(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) < 200 else text[:200] + "..."


# ---------------------------------------------------------------------- record streams
# JSON Lines, CSV and Parquet files are read a line, row or row group at a time: memory holds
# one record, never the file, and the caller can commit a long file in pieces.
def decoded_lines(stream: BinaryIO, warnings: list[str]) -> Iterator[str]:
    """The lines of a byte stream as text (endings kept), decoded as decode_text decodes a
    whole file: UTF-8 with or without BOM, UTF-16 with a BOM (read whole: rare for records), a
    legacy 8-bit file read as Windows-1252; broken bytes replaced, and counted in a warning."""
    head = stream.read(8192)
    if b"\x00" in head and not head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise UnreadableFile("binary content (NUL bytes)")
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        text, more = decode_text(head + stream.read())
        warnings.extend(more)
        yield from text.splitlines(keepends=True)
        return
    if head.startswith(codecs.BOM_UTF8):
        head = head[len(codecs.BOM_UTF8):]
    legacy, multibyte_seen = False, False
    offset, first_bad, replaced = 0, None, 0
    for line in _lines_of(head, stream):
        if legacy:
            yield _legacy(line)
            continue
        try:
            text = line.decode("utf-8")
            multibyte_seen = multibyte_seen or not text.isascii()
        except UnicodeDecodeError as exc:
            text = line.decode("utf-8", errors="replace")
            if not multibyte_seen and not any(ord(c) > 127 and c != "\ufffd" for c in text):
                # No valid multi-byte sequence so far: a legacy 8-bit file, not damaged UTF-8.
                legacy = True
                warnings.append("not UTF-8; read as Windows-1252")
                text = _legacy(line)
            else:
                first_bad = offset + exc.start if first_bad is None else first_bad
                replaced += text.count("\ufffd")
        offset += len(line)
        yield text
    if replaced:
        warnings.append(f"invalid UTF-8 (first at byte {first_bad}); {replaced} character(s) replaced with U+FFFD")


def _lines_of(head: bytes, stream: BinaryIO) -> Iterator[bytes]:
    """Byte lines (b"\\n" kept) of `head` followed by the rest of `stream`."""
    pending = head
    while True:
        cut = pending.find(b"\n")
        if cut >= 0:
            yield pending[:cut + 1]
            pending = pending[cut + 1:]
            continue
        more = stream.readline()
        if not more:
            break
        pending += more
    if pending:
        yield pending


def _legacy(line: bytes) -> str:
    try:
        return line.decode("cp1252")
    except UnicodeDecodeError:  # bytes cp1252 leaves undefined
        return line.decode("latin-1")


def stream_jsonl(stream: BinaryIO, path: Path, fields: RecordFields, warnings: list[str]) -> Iterator[SourceText]:
    bad: list[int] = []

    def records() -> Iterator[tuple[int, Any]]:
        for line_no, line in enumerate(decoded_lines(stream, warnings), start=1):
            if not line.strip():
                continue
            try:
                yield line_no, json.loads(line)
            except (ValueError, RecursionError):  # malformed; a 5,000-digit number; nesting too deep
                bad.append(line_no)

    yield from _record_texts(records(), fields, warnings)
    if bad:
        warnings.append(f"{len(bad)} malformed line(s) skipped (first: line {bad[0]})")


def stream_csv(stream: BinaryIO, path: Path, fields: RecordFields, warnings: list[str]) -> Iterator[SourceText]:
    csv.field_size_limit(1 << 30)
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    reader = csv.DictReader(decoded_lines(stream, warnings), delimiter=delimiter)

    def records() -> Iterator[tuple[int, Any]]:
        row = 0
        try:
            for row, record in enumerate(reader, start=1):
                record.pop(None, None)  # cells beyond the header row
                yield row, record
        except csv.Error as exc:
            if row == 0:
                raise UnreadableFile(f"malformed {path.suffix} file: {exc}") from None
            warnings.append(f"malformed {path.suffix} after row {row} ({exc}); the rows before it are kept")

    yield from _record_texts(records(), fields, warnings)


def stream_parquet(stream: BinaryIO, path: Path, fields: RecordFields, warnings: list[str]) -> Iterator[SourceText]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.ParquetFile(stream)
    except (pa.ArrowInvalid, OSError) as exc:
        raise UnreadableFile(f"not a readable Parquet file: {exc}") from None

    def records() -> Iterator[tuple[int, Any]]:
        row = 0
        for batch in table.iter_batches(batch_size=1024):
            for record in batch.to_pylist():
                yield row, record
                row += 1

    yield from _record_texts(records(), fields, warnings)

