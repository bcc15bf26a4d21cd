"""Translated manual pages, aligned paragraph by paragraph with their English pages: the roff
reader behind debian_text's manpages.tsv.

Debian's translated manual pages (manpages-l10n's manpages-de, -fr, -ru... and the pages that
dpkg or apt ship translated) are made with po4a from the English page of the same release: po4a
translates a page paragraph by paragraph and keeps every macro, so the translated page has the
English page's sections and, in each section, its paragraphs in the same order (and one more
section at the end, which names the translators). A page whose sections' paragraph counts differ
anywhere (translated from another version) is skipped; a paragraph po4a left untranslated is
English on both sides and is dropped by the caller.

Why a reader of our own: rendering (groff, mandoc) loses the paragraph boundaries the alignment
needs, and none of the roff parsers on PyPI is kept up. This one reads the man macros a page's
prose uses; code (.nf/.fi, .EX/.EE), tables (.TS/.TE) and every other request are left out.
"""

from __future__ import annotations

import gzip
import re
from collections.abc import Iterator
from pathlib import Path

Sections = list[list[str]]  # a page: its sections, each a list of paragraphs (plain text)

PARAGRAPH = {"PP", "P", "LP", "HP", "IP", "TP", "TQ", "SS"}  # start a new paragraph
TAGGED = {"TP", "TQ"}  # the next text line is the tag (an option's name): left out
FONT = {"B", "I", "SM", "SB"}  # arguments in one font, joined by spaces
ALTERNATING = {"BR", "RB", "IR", "RI", "BI", "IB"}  # arguments in alternating fonts, joined without spaces
# Blocks left out, by the request that ends each: code, tables, ignored text, macro definitions
# (which end at "..", written ".  ." inside an indented .if block as well).
SKIPPED_BLOCKS = {"nf": "fi", "EX": "EE", "TS": "TE", "ig": ".", "de": ".", "am": "."}
SPECIAL = {"aq": "'", "dq": '"', "lq": '"', "rq": '"', "oq": "'", "cq": "'", "co": "©", "rg": "®", "em": "—",
           "en": "–", "hy": "-", "bu": "•", "mu": "×", "de": "°", "ti": "~", "ha": "^", "ga": "`", "ba": "|",
           "rs": "\\", "Fo": "«", "Fc": "»", "fo": "‹", "fc": "›", "<=": "≤", ">=": "≥", "->": "→", "<-": "←",
           "aa": "´", "pl": "+", "mi": "−", "eq": "=", "lh": "☜", "rh": "☞", "sc": "§", "tm": "™"}
ESCAPE = re.compile(r"""\\(?:
      f(?:\[[^\]]*\]|\(..|.)          # font change
    | \((..)                          # special character \(xx
    | \[([^\]]*)\]                    # special character \[name]
    | \*(?:\[[^\]]*\]|\(..|.)         # string
    | n[+-]?(?:\[[^\]]*\]|\(..|.)     # number register
    | s[+-]?(?:\(..|\[[^\]]*\]|\d+)   # size change
    | (.)                             # any other one-character escape
)""", re.VERBOSE)
ONE_CHARACTER = {"-": "-", "e": "\\", " ": " ", "~": " ", "0": " ", "\\": "\\", "'": "'", "`": "`", ".": "."}


def inline_text(line: str) -> str:
    """A roff text line as plain text: font changes, sizes and zero-width escapes dropped,
    special characters spelled out."""
    line = re.sub(r'\\".*$', "", line)  # a comment to the end of the line

    def replace(match: re.Match) -> str:
        special = match.group(1) or match.group(2)
        if special is not None:
            return SPECIAL.get(special, "")
        single = match.group(3)
        return ONE_CHARACTER.get(single, "") if single is not None else ""

    return ESCAPE.sub(replace, line)


def macro_arguments(rest: str) -> list[str]:
    """A request's arguments: words, or double-quoted strings ("" is a quote inside one)."""
    return [m.group(1).replace('""', '"') if m.group(1) is not None else m.group(2)
            for m in re.finditer(r'"((?:[^"]|"")*)"?|(\S+)', rest)]


def page_sections(text: str) -> Sections:
    """A man page's sections (from each .SH), each the text of its paragraphs in order; the
    heading lines themselves are not text (NAME, DESCRIPTION), a subsection's title is."""
    sections: Sections = []
    words: list[str] = []
    skip_until: str | None = None
    skip_tag = False

    def close_paragraph() -> None:
        if sections and words:
            sections[-1].append(" ".join(" ".join(words).split()))
        words.clear()

    for line in text.splitlines():
        control = line.startswith((".", "'"))  # a request line, else text
        request, _, rest = line[1:].strip().partition(" ") if control else ("", "", "")
        if skip_until is not None:
            if control and request == skip_until:
                skip_until = None
            continue
        if control:
            if request.startswith(('\\"', '"')) or not request:  # a comment, or an empty request
                continue
            if request == "SH":
                close_paragraph()
                sections.append([])
            elif request in PARAGRAPH:
                close_paragraph()
                skip_tag = request in TAGGED
                if request == "SS":
                    words.append(inline_text(" ".join(macro_arguments(rest))))
                    close_paragraph()
            elif request in SKIPPED_BLOCKS:
                skip_until = SKIPPED_BLOCKS[request]
            elif request in FONT or request in ALTERNATING:
                joiner = " " if request in FONT else ""
                text_of = inline_text(joiner.join(macro_arguments(rest)))
                if skip_tag:
                    skip_tag = False
                elif text_of:
                    words.append(text_of)
            elif request in ("UE", "ME"):  # the text after a link's end (".UE ," or ".UE .")
                words.append(inline_text(rest))
            continue  # .br, .RS, .UR url, .TH... carry no prose
        if skip_tag:
            skip_tag = False
            continue
        words.append(inline_text(line))
    close_paragraph()
    return sections


def read_page(path: Path) -> Sections:
    """A page file (gzip'd or not) as sections; a page that is only `.so other-page` has none."""
    raw = path.read_bytes()
    if path.suffix == ".gz":
        raw = gzip.decompress(raw)
    return page_sections(raw.decode("utf-8", errors="replace"))


def aligned_paragraphs(english: Sections, translated: Sections) -> Iterator[tuple[str, str]]:
    """(English, translation) paragraph pairs of two versions of a page, in order, when every
    section has as many paragraphs in both (the translation may have one section more at the end:
    its translators'); a paragraph with a byte that did not decode is left out.

    The whole page must line up, not each section on its own: the Japanese and Chinese projects
    translated older versions of many pages, whose sections can match in count by chance (measured
    on Debian 12: of the Japanese paragraphs whose English pair cites a page, name(N), or a
    --long-option, 49% lacked those citations when sections matched one by one, and 1.5% when
    whole pages must match, about what po4a's languages show either way: 0.3-2%)."""
    if len(translated) not in (len(english), len(english) + 1):
        return
    if any(len(a) != len(b) for a, b in zip(english, translated)):
        return
    for english_section, translated_section in zip(english, translated):
        for source, translation in zip(english_section, translated_section):
            if "\ufffd" not in source + translation:
                yield source, translation


def page_key(path: Path, man_root: Path) -> tuple[str, str] | None:
    """(locale, 'man1/ls.1') of a page under usr/share/man: locale '' for an English page."""
    parts = path.relative_to(man_root).parts
    name = parts[-1].removesuffix(".gz")
    if len(parts) == 2 and parts[0].startswith("man"):
        return "", f"{parts[0]}/{name}"
    if len(parts) == 3 and parts[1].startswith("man"):
        return parts[0], f"{parts[1]}/{name}"
    return None


def pages(root: Path) -> Iterator[tuple[str, str, Path]]:
    """(locale, page, path) of every manual page an unpacked package holds."""
    man_root = root / "usr" / "share" / "man"
    if not man_root.is_dir():
        return
    for path in sorted(man_root.rglob("*")):
        if path.is_file() and not path.is_symlink() and (key := page_key(path, man_root)):
            yield key[0], key[1], path
