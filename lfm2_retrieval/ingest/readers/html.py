"""HTML (.html, .htm, .xhtml): the visible text, without navigation, with a section path per heading."""

from __future__ import annotations

import re
from pathlib import Path

from .base import ReadResult, RecordFields, SourceText, decode_text

SUFFIXES = {".html", ".htm", ".xhtml"}

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


def read_html(path: Path, data: bytes, fields: RecordFields) -> ReadResult:
    raw, warnings = decode_text(data)
    text, title, sections = html_text_and_sections(raw)
    return ReadResult([SourceText(text, title=title or path.stem, sections=sections or None)], warnings)

