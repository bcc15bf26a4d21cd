"""Turning files into text: one reader per format, each returning `SourceText`s.

Plain text (.txt, .md, .markdown, .rst), HTML (.html, .htm), records (.json, .jsonl, .csv,
.tsv, .parquet) and PDF (.pdf, through pypdf, page numbers kept). A file yields one text, or
one per record. Problems never stop a run: the reader raises `UnreadableFile` with the reason
(binary content, a broken PDF, no text field) and the caller skips the file with a warning;
bad lines of a JSONL file and undecodable bytes are warnings, and the rest is kept.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import io
import json
import logging
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

TEXT_SUFFIXES = {".txt", ".md", ".markdown", ".rst", ".text"}
MARKDOWN_SUFFIXES = {".md", ".markdown"}
HTML_SUFFIXES = {".html", ".htm", ".xhtml"}
RECORD_SUFFIXES = {".json", ".jsonl", ".ndjson", ".csv", ".tsv", ".parquet"}
PDF_SUFFIXES = {".pdf"}
SUPPORTED_SUFFIXES = TEXT_SUFFIXES | HTML_SUFFIXES | RECORD_SUFFIXES | PDF_SUFFIXES

# Bumped when a reader's output changes, so that `index` reads every file again.
READERS_VERSION = 2

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


def _streamed(path: Path, data: bytes | None, fields: RecordFields, warnings: list[str], stream_reader) -> Iterator[SourceText]:
    with (io.BytesIO(data) if data is not None else open(path, "rb")) as stream:
        yield from (t for t in stream_reader(stream, path, fields, warnings) if t.text.strip())


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


def _text_title(path: Path, text: str) -> str:
    """A Markdown `# Heading`, an RST title (a line underlined with = - ~ ...), or the file name."""
    lines = text.lstrip().splitlines()[:20]
    for i, line in enumerate(lines):
        if m := re.match(r"^#\s+(.+?)\s*#*\s*$", line):
            return m.group(1)
        if i + 1 < len(lines) and line.strip() and re.fullmatch(r"([=\-~^*#+])\1{2,}\s*", lines[i + 1]):
            return line.strip()
    return path.stem


def _read_plain(path: Path, data: bytes, fields: RecordFields) -> ReadResult:
    text, warnings = decode_text(data)
    return ReadResult([SourceText(text, title=_text_title(path, text))], warnings)


# ---------------------------------------------------------------------- Markdown
# Markdown is read as the text a reader sees: headings without their marks, anchors or attribute
# lists (`{ #request-body }`), links as their words, no HTML tags or comments, no admonition
# markers (`///`, `:::`, `!!!`), no snippet includes (`{* file.py *}`), code without its fences;
# each heading starts a section whose path ("Install > On Debian") chunks carry.
_FENCE = re.compile(r"^\s*(`{3,}|~{3,})")
_ATX = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
_SETEXT = re.compile(r"^\s{0,3}(=+|-+)\s*$")
_ATTRIBUTES = re.compile(r"\s*\{\s*[#.:][^{}\n]*\}")
_ADMONITION = re.compile(r"^\s*(/{3,}|:{3,}|!{3}|\?{3}\+?)\s*(.*?)\s*$")
_INCLUDE = re.compile(r"\{([*!%]).*?\1\}")
_IMAGE_OR_LINK = re.compile(r"!?\[([^\]\n]*)\]\([^)\n]*\)")
_REFERENCE = re.compile(r"\[([^\]\n]+)\]\[[^\]\n]*\]")
_REFERENCE_DEFINITION = re.compile(r"^\s{0,3}\[[^\]]+\]:\s+\S+.*$")
_HTML_COMMENT = re.compile(r"<!--.*?(-->|\Z)", re.S)
_HTML_TAG = re.compile(r"</?[A-Za-z][A-Za-z0-9-]*(?:\s[^<>]*)?/?>")
_TABLE_RULE = re.compile(r"^(?=.*\|)[\s|:\-]*-{3,}[\s|:\-]*$")
_THEMATIC_BREAK = re.compile(r"^\s{0,3}([-*_])(\s*\1){2,}\s*$")
_STRONG = re.compile(r"(\*\*|__)(?=\S)(.+?)(?<=\S)\1")
_CODE_SPAN = re.compile(r"`+([^`\n]+?)`+")


def _inline(line: str) -> str:
    line = _INCLUDE.sub("", _ATTRIBUTES.sub("", line))
    line = _REFERENCE.sub(r"\1", _IMAGE_OR_LINK.sub(r"\1", line))
    line = _CODE_SPAN.sub(r"\1", _STRONG.sub(r"\2", _HTML_TAG.sub("", line)))
    if line.lstrip().startswith("|"):  # a table row: cells apart, pipes gone
        line = " ".join(cell.strip() for cell in line.strip().strip("|").split("|"))
    return line.rstrip()


def _admonition_title(rest: str) -> str:
    """`/// tip | Title`, `!!! note "Title"`, `::: warning Title` -> the title (a bare type: none)."""
    if "|" in rest:
        return rest.split("|", 1)[1].strip()
    if m := re.search(r'"([^"]*)"', rest):
        return m.group(1)
    words = rest.split(None, 1)
    return words[1] if len(words) > 1 else ""


def markdown_text(raw: str) -> tuple[str, str, list[tuple[int, str]]]:
    """(visible text, title, sections) of a Markdown page."""
    title = ""
    lines = raw.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    if lines and lines[0].strip() == "---":  # YAML front matter: its title, never its text
        end = next((i for i in range(1, min(len(lines), 200)) if lines[i].strip() in ("---", "...")), None)
        if end is not None:
            for line in lines[1:end]:
                if m := re.match(r"^title:\s*(.+?)\s*$", line):
                    title = m.group(1).strip("'\"")
            lines = lines[end + 1:]
    lines = _HTML_COMMENT.sub("", "\n".join(lines)).split("\n")
    out: list[str] = []
    emit = out.append
    sections: list[str] = []  # heading paths, in order
    path: list[tuple[int, str]] = []
    fence = ""

    def heading(level: int, text: str) -> None:
        text = _inline(text).strip()
        if not text:
            return
        while path and path[-1][0] >= level:
            path.pop()
        path.append((level, text))
        sections.append(" > ".join(t for _, t in path))
        emit(text)

    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if fence:
            if line.strip().startswith(fence):
                fence = ""
            else:
                emit(line.rstrip())
            continue
        if m := _FENCE.match(line):
            fence = m.group(1)
            continue
        if m := _ATX.match(line):
            heading(len(m.group(1)), m.group(2))
            continue
        if line.strip() and i < len(lines) and _SETEXT.match(lines[i]) and not _ADMONITION.match(line) \
                and not _THEMATIC_BREAK.match(line) and not line.lstrip().startswith(("-", "*", "|", ">")):
            heading(1 if lines[i].strip().startswith("=") else 2, line)
            i += 1
            continue
        if m := _ADMONITION.match(line):
            if t := _admonition_title(m.group(2)):
                emit(_inline(t))
            continue
        if _REFERENCE_DEFINITION.match(line) or _TABLE_RULE.match(line) or _THEMATIC_BREAK.match(line):
            continue
        emit(_inline(line))
    text = re.sub(r"\n{3,}", "\n\n", "\n".join(out)).strip("\n")
    # Each section starts at its heading, found in order in the final text.
    placed, at = [], 0
    for name in sections:
        heading_text = name.rsplit(" > ", 1)[-1]
        found = text.find(heading_text, at)
        if found >= 0:
            placed.append((found, name))
            at = found + len(heading_text)
    if not title:
        title = sections[0] if sections else ""
    return text, title, placed


def _read_markdown(path: Path, data: bytes, fields: RecordFields) -> ReadResult:
    raw, warnings = decode_text(data)
    text, title, sections = markdown_text(raw)
    return ReadResult([SourceText(text, title=title or path.stem, sections=sections or None)], warnings)


# ---------------------------------------------------------------------- HTML
# Visible text of an HTML page, with line breaks at block elements. Parsed by lxml (libxml2's
# HTML parser, in C, linear in the input): the standard library's parser backtracks
# quadratically on malformed tags ('<a ' * 20000, 60 KB, took 95 s) while the writer waited.
HTML_SKIP = {"script", "style", "noscript", "template", "svg", "head", "nav"}
# Navigation bars by class or id (DocBook's, Publican's, Sphinx's), where a page does not use <nav>:
# links, not text.
NAVIGATION_CLASSES = {"navheader", "navfooter", "docnav", "sphinxsidebar", "related", "headerlink"}
NAVIGATION_IDS = {"banner"}
HTML_BLOCK = {"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "section", "article",
              "header", "footer", "pre", "blockquote", "table", "ul", "ol", "dd", "dt", "hr", "title"}


_XML_DECLARATION = re.compile(r"^\s*<\?xml[^>]*\?>")
HTML_HEADINGS = {"h1": 1, "h2": 2, "h3": 3, "h4": 4, "h5": 5, "h6": 6}
_SECTION_MARK = "\ue000"  # a private-use character marks where each heading starts


def _navigation(el) -> bool:
    """A navigation bar or a heading's permalink (`<a class="headerlink">¶</a>`): not text."""
    classes = el.get("class")
    return (bool(classes) and not NAVIGATION_CLASSES.isdisjoint(classes.split())) or el.get("id") in NAVIGATION_IDS


def html_text(raw: str) -> tuple[str, str]:
    """(visible text, title) of an HTML document; walked without recursion, so nesting depth
    costs nothing but time."""
    text, title, _ = html_text_and_sections(raw)
    return text, title


def html_text_and_sections(raw: str) -> tuple[str, str, list[tuple[int, str]]]:
    """(visible text, title, sections): each h1-h6 starts a section named by its heading path."""
    from lxml import etree, html

    parser = html.HTMLParser(huge_tree=True, remove_comments=True, remove_pis=True)
    try:
        # An XHTML page's XML declaration names an encoding, which lxml refuses on decoded text
        # (ValueError): the page would read as empty. The text is decoded already; drop it.
        root = html.document_fromstring(_XML_DECLARATION.sub("", raw, count=1), parser=parser)
    except (etree.ParserError, ValueError):  # nothing parseable (e.g. only whitespace or markup)
        return "", "", []
    if any("depth" in e.message.lower() for e in parser.error_log):
        # libxml2 stops below a few thousand nested elements and drops what is deeper: keep the
        # text by stripping the tags instead (linear; markup is gone, layout too).
        return _normalise_lines(re.sub(r"<[^<>]*>", " ", raw)), "", []
    title = " ".join(" ".join(t.text_content() for t in root.iter("title")).split())
    parts: list[str] = []
    names: list[str] = []
    path: list[tuple[int, str]] = []
    skip_depth = 0
    for event, el in etree.iterwalk(root, events=("start", "end")):
        tag = el.tag if isinstance(el.tag, str) else ""
        if event == "start":
            if tag in HTML_SKIP or _navigation(el):
                skip_depth += 1
            elif not skip_depth:
                if tag in HTML_BLOCK:
                    parts.append("\n")
                if tag in HTML_HEADINGS and (heading := " ".join(el.text_content().split()).rstrip(" ¶#§")):
                    while path and path[-1][0] >= HTML_HEADINGS[tag]:
                        path.pop()
                    path.append((HTML_HEADINGS[tag], heading))
                    names.append(" > ".join(t for _, t in path))
                    parts.append(_SECTION_MARK)
                if el.text:
                    parts.append(el.text)
        else:
            if tag in HTML_SKIP or _navigation(el):
                skip_depth -= 1
            elif not skip_depth and tag in HTML_BLOCK:
                parts.append("\n")
            if not skip_depth and el.tail:
                parts.append(el.tail)
    pieces = _normalise_lines("".join(parts)).split(_SECTION_MARK)
    text, sections = pieces[0], []
    for name, piece in zip(names, pieces[1:]):
        sections.append((len(text), name))
        text += piece.lstrip(" ")
    return text, title, sections


def _normalise_lines(text: str) -> str:
    lines = (re.sub(r"[ \t\r\f\v]+", " ", line).strip() for line in text.split("\n"))
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def _read_html(path: Path, data: bytes, fields: RecordFields) -> ReadResult:
    raw, warnings = decode_text(data)
    text, title, sections = html_text_and_sections(raw)
    return ReadResult([SourceText(text, title=title or path.stem, sections=sections or None)], warnings)


# ---------------------------------------------------------------------- records
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


def _record_texts(records: Iterable[tuple[int, Any]], fields: RecordFields, warnings: list[str]) -> Iterator[SourceText]:
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


def _read_json(path: Path, data: bytes, fields: RecordFields) -> ReadResult:
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


def _stream_jsonl(stream: BinaryIO, path: Path, fields: RecordFields, warnings: list[str]) -> Iterator[SourceText]:
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


def _stream_csv(stream: BinaryIO, path: Path, fields: RecordFields, warnings: list[str]) -> Iterator[SourceText]:
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


def _stream_parquet(stream: BinaryIO, path: Path, fields: RecordFields, warnings: list[str]) -> Iterator[SourceText]:
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


# ---------------------------------------------------------------------- PDF
def _read_pdf(path: Path, data: bytes, fields: RecordFields) -> ReadResult:
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
        except Exception:  # noqa: BLE001 - pypdf raises many kinds on damaged pages
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
    except Exception:  # noqa: BLE001 - damaged metadata is not worth failing over
        pass
    return ReadResult([SourceText("\n\n".join(parts), title=str(title) or path.stem, page_starts=starts)], warnings)


_READERS: dict[str, Callable[[Path, bytes, RecordFields], ReadResult]] = {
    **{s: _read_plain for s in TEXT_SUFFIXES - MARKDOWN_SUFFIXES},
    **{s: _read_markdown for s in MARKDOWN_SUFFIXES},
    **{s: _read_html for s in HTML_SUFFIXES},
    ".json": _read_json,
    ".pdf": _read_pdf,
}
_STREAMS = {".jsonl": _stream_jsonl, ".ndjson": _stream_jsonl, ".csv": _stream_csv, ".tsv": _stream_csv,
            ".parquet": _stream_parquet}
STREAMED_SUFFIXES = set(_STREAMS)
