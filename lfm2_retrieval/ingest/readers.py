"""Turning files into text: one reader per format, each returning `SourceText`s.

Plain text (.txt, .md, .markdown, .rst), HTML (.html, .htm), records (.json, .jsonl, .csv,
.tsv, .parquet) and PDF (.pdf, through pypdf, page numbers kept). A file yields one text, or
one per record. Problems never stop a run: the reader raises `UnreadableFile` with the reason
(binary content, a broken PDF, no text field) and the caller skips the file with a warning;
bad lines of a JSONL file and undecodable bytes are warnings, and the rest is kept.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
    texts: list[SourceText]
    warnings: list[str] = field(default_factory=list)


def read_file(path: Path, data: bytes, fields: RecordFields | None = None) -> ReadResult:
    """Texts of a file whose bytes are `data` (read once by the caller, who also hashes them)."""
    suffix = path.suffix.lower()
    fields = fields or RecordFields()
    reader = _READERS.get(suffix)
    if reader is None:
        raise UnreadableFile(f"unsupported file type {suffix or '(none)'}")
    result = reader(path, data, fields)
    result.texts = [t for t in result.texts if t.text.strip()]
    return result


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


def _records_to_result(records, fields: RecordFields, path: Path, warnings: list[str]) -> ReadResult:
    texts: list[SourceText] = []
    missing: list[str] = []
    for row, record in records:
        if not isinstance(record, dict):
            warnings.append(f"record {row}: not an object, skipped")
            continue
        try:
            texts.append(_record_to_text(record, row, fields, f"record {row}"))
        except KeyError as exc:
            missing.append(str(exc.args[0]))
    if missing:
        if not texts:
            raise UnreadableFile(missing[0])
        warnings.append(f"{len(missing)} record(s) without a {fields.text!r} field skipped (first: {missing[0]})")
    seen: set[str] = set()
    for t in texts:  # ids must be unique within a file; later duplicates get their row number
        if t.record_id in seen:
            warnings.append(f"duplicate record id {t.record_id!r}; later copies are numbered")
            t.record_id = f"{t.record_id}~{len(seen)}"
        seen.add(t.record_id)
    return ReadResult(texts, warnings)


def _read_json(path: Path, data: bytes, fields: RecordFields) -> ReadResult:
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
    return _records_to_result(enumerate(records), fields, path, warnings)


def _short(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) < 200 else text[:200] + "..."


def _read_jsonl(path: Path, data: bytes, fields: RecordFields) -> ReadResult:
    raw, warnings = decode_text(data)
    records, bad = [], []
    for line_no, line in enumerate(raw.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append((line_no, json.loads(line)))
        except (ValueError, RecursionError):  # malformed; a 5,000-digit number; nesting too deep
            bad.append(line_no)
    if bad:
        warnings.append(f"{len(bad)} malformed line(s) skipped (first: line {bad[0]})")
    return _records_to_result(records, fields, path, warnings)


def _read_csv(path: Path, data: bytes, fields: RecordFields) -> ReadResult:
    raw, warnings = decode_text(data)
    csv.field_size_limit(1 << 30)
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    try:
        reader = csv.DictReader(io.StringIO(raw, newline=""), delimiter=delimiter)
        records = [(row, dict(r)) for row, r in enumerate(reader, start=1)]
    except csv.Error as exc:
        raise UnreadableFile(f"malformed {path.suffix} file: {exc}") from None
    for _, record in records:
        record.pop(None, None)  # cells beyond the header row
    return _records_to_result(records, fields, path, warnings)


def _read_parquet(path: Path, data: bytes, fields: RecordFields) -> ReadResult:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(pa.BufferReader(data))
    except (pa.ArrowInvalid, OSError) as exc:
        raise UnreadableFile(f"not a readable Parquet file: {exc}") from None
    return _records_to_result(enumerate(table.to_pylist()), fields, path, [])


# ---------------------------------------------------------------------- PDF
def _read_pdf(path: Path, data: bytes, fields: RecordFields) -> ReadResult:
    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    warnings: list[str] = []
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise UnreadableFile("encrypted PDF")
        pages = list(reader.pages)
    except UnreadableFile:
        raise
    except (PyPdfError, ValueError, KeyError, OSError, TypeError) as exc:
        raise UnreadableFile(f"not a readable PDF: {exc}") from None
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
    ".jsonl": _read_jsonl,
    ".ndjson": _read_jsonl,
    ".csv": _read_csv,
    ".tsv": _read_csv,
    ".parquet": _read_parquet,
    ".pdf": _read_pdf,
}
