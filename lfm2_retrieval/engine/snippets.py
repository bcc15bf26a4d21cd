"""Snippets: the part of a hit's text that answers the query, its matched words highlighted.

A word is highlighted when BM25 would match it: analysed as its chunk was (stemmed in the chunk's
language; index/analysis.py), it is one of the query's terms for that language. So highlights
are whole words, every occurrence, "archivos" for a query that says "archivo", and never a stop
word alone (the query's terms hold none); in unspaced scripts, the character pairs the query
shares. The window of `chars` characters with the most distinct matched words is the snippet,
cut at word edges and marked with an ellipsis where it cuts (Meilisearch's `_formatted` and
`_matchesPosition`, in small).
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass

from ..index.analysis import UNSPACED, Analysis, LexicalQuery, stem

_WORD = re.compile(r"\w+", re.UNICODE)
ELLIPSIS = "\u2026"


@dataclass
class Snippet:
    text: str  # the window of the hit's text (an ellipsis where it was cut)
    highlights: list[tuple[int, int]]  # character spans of matched words in `text`
    start: int  # where the window starts in the hit's text

    @property
    def formatted(self) -> str:
        """The snippet as HTML: escaped, each highlight in <mark>."""
        out, last = [], 0
        for start, end in self.highlights:
            out += [html.escape(self.text[last:start]), "<mark>", html.escape(self.text[start:end]), "</mark>"]
            last = end
        return "".join(out + [html.escape(self.text[last:])])

    def as_dict(self) -> dict:
        return {"text": self.text, "highlights": [list(h) for h in self.highlights], "start": self.start,
                "formatted": self.formatted}


def matches(text: str, terms: set[str], analysis: Analysis, lang: str) -> list[tuple[int, int, str]]:
    """(start, end, term) of every word (or unspaced character pair) of `text` that is a query term."""
    stemmer = analysis.key(lang)[0]
    found = []
    for m in _WORD.finditer(text):
        word = m.group()
        if UNSPACED.search(word):  # Chinese, Japanese, Thai...: the pairs the query shares
            lowered = word.lower()
            found += [(m.start() + i, m.start() + i + 2, lowered[i:i + 2]) for i in range(len(word) - 1)
                      if lowered[i:i + 2] in terms]
            continue
        term = stem(word, stemmer)
        if term in terms:
            found.append((m.start(), m.end(), term))
    return _merged(found)


def _merged(spans: list[tuple[int, int, str]]) -> list[tuple[int, int, str]]:
    """Overlapping spans (a run of character pairs) as one."""
    out: list[tuple[int, int, str]] = []
    for start, end, term in spans:
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], max(end, out[-1][1]), out[-1][2])
        else:
            out.append((start, end, term))
    return out


def snippet(text: str, query: LexicalQuery, analysis: Analysis, lang: str = "", chars: int = 240) -> Snippet:
    """The snippet of `text` (a chunk of language `lang`) for `query`; chars 0: the whole text."""
    terms = set(analysis.query_terms(query.text, query.languages, (lang,)))
    found = matches(text, terms, analysis, lang)
    if chars <= 0 or len(text) <= chars:
        return Snippet(text, [(s, e) for s, e, _ in found], 0)
    start = _best_start(text, found, chars)
    end = min(len(text), start + chars)
    if end < len(text):  # end at a word's edge
        edge = text.rfind(" ", start, end)
        end = edge if edge > start + chars // 2 else end
    prefix = ELLIPSIS if start > 0 else ""
    body = text[start:end].strip()
    lead = len(text[start:end]) - len(text[start:end].lstrip())
    shift = len(prefix) - start - lead
    spans = [(s + shift, e + shift) for s, e, _ in found if s >= start + lead and e <= start + lead + len(body)]
    return Snippet(prefix + body + (ELLIPSIS if end < len(text) else ""), spans, start + lead)


def _best_start(text: str, found: list[tuple[int, int, str]], chars: int) -> int:
    """Where the window with the most distinct matched terms (then matches) starts: a little
    before its first match, at a word's edge."""
    if not found:
        return 0
    best, best_key = found[0][0], (-1, -1)
    for i, (anchor, _, _) in enumerate(found):
        inside = [f for f in found[i:] if f[1] <= anchor + chars * 3 // 4]
        key = (len({t for _, _, t in inside}), len(inside))
        if key > best_key:
            best, best_key = anchor, key
    start = max(0, best - chars // 4)
    if start > 0:
        edge = text.find(" ", start, best)
        start = edge + 1 if edge >= 0 else start
    return start
