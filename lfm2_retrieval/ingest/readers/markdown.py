"""Markdown (.md, .markdown) as the text a reader sees, with a section path per heading."""

from __future__ import annotations

import re
from pathlib import Path

from .base import ReadResult, RecordFields, SourceText, decode_text

SUFFIXES = {".md", ".markdown"}

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


def read_markdown(path: Path, data: bytes, fields: RecordFields) -> ReadResult:
    raw, warnings = decode_text(data)
    text, title, sections = markdown_text(raw)
    return ReadResult([SourceText(text, title=title or path.stem, sections=sections or None)], warnings)

