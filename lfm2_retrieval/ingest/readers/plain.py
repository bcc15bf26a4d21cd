"""Plain text (.txt, .rst, .text): the whole file, titled by its first heading or its name."""

from __future__ import annotations

import re
from pathlib import Path

from .base import ReadResult, RecordFields, SourceText, decode_text

SUFFIXES = {".txt", ".rst", ".text"}


def _text_title(path: Path, text: str) -> str:
    """A Markdown `# Heading`, an RST title (a line underlined with = - ~ ...), or the file name."""
    lines = text.lstrip().splitlines()[:20]
    for i, line in enumerate(lines):
        if m := re.match(r"^#\s+(.+?)\s*#*\s*$", line):
            return m.group(1)
        if i + 1 < len(lines) and line.strip() and re.fullmatch(r"([=\-~^*#+])\1{2,}\s*", lines[i + 1]):
            return line.strip()
    return path.stem


def read_plain(path: Path, data: bytes, fields: RecordFields) -> ReadResult:
    text, warnings = decode_text(data)
    return ReadResult([SourceText(text, title=_text_title(path, text))], warnings)

