"""Lexical matching with BM25 (bm25s), for any script.

Words are runs of letters and digits, lower-cased. Scripts written without spaces (Chinese,
Japanese, Thai, ...) have no words to split on, so their runs become overlapping character
bigrams (and single characters), the usual choice for BM25 on CJK text. Korean uses spaces,
but its words carry particles, so Hangul runs get bigrams as well.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

EMPTY_TOKEN = "\u2400"  # stands in for a text with no token at all
_TOKEN = re.compile(r"\w+", re.UNICODE)
# Han, Hiragana, Katakana, Hangul, Thai, Lao, Khmer, Myanmar.
_NO_SPACE = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af"
                       r"\u0e00-\u0eff\u1780-\u17ff\u1000-\u109f]+")


def tokenize(text: str) -> list[str]:
    """Lexical tokens of any text: words, and character bigrams for unspaced scripts."""
    text = unicodedata.normalize("NFKC", text).lower()
    tokens: list[str] = []
    for word in _TOKEN.findall(text):
        pos = 0
        for m in _NO_SPACE.finditer(word):
            if m.start() > pos:
                tokens.append(word[pos:m.start()])
            run = m.group()
            tokens.extend(run)  # single characters keep one-character words findable
            tokens.extend(run[i:i + 2] for i in range(len(run) - 1))
            pos = m.end()
        if pos < len(word):
            tokens.append(word[pos:])
    return tokens


class BM25Index:
    """BM25 over a fixed list of texts (bm25s, Lucene's scoring variant); saved and memory-mapped."""

    def __init__(self, bm25, size: int) -> None:
        self._bm25 = bm25
        self.size = size
        self._vocab = set(bm25.vocab_dict)

    @classmethod
    def build(cls, texts: Iterable[str], k1: float = 1.2, b: float = 0.75) -> "BM25Index":
        import bm25s
        from bm25s.tokenization import Tokenized

        # Token ids as compact arrays, built one text at a time: a million chunks never sit in
        # memory as lists of Python strings.
        vocab: dict[str, int] = {}
        ids = [np.fromiter((vocab.setdefault(tok, len(vocab)) for tok in tokenize(t) or [EMPTY_TOKEN]), np.int32)
               for t in texts]  # an empty text still takes its row
        bm25 = bm25s.BM25(k1=k1, b=b)
        bm25.index(Tokenized(ids=ids, vocab=vocab), show_progress=False)
        return cls(bm25, len(ids))

    def save(self, folder: Path) -> None:
        self._bm25.save(str(folder))
        (Path(folder) / "size.json").write_text(json.dumps({"size": self.size}))

    @classmethod
    def load(cls, folder: Path) -> "BM25Index":
        import bm25s

        size = json.loads((Path(folder) / "size.json").read_text())["size"]
        return cls(bm25s.BM25.load(str(folder), mmap=True), size)

    def search(self, queries: Sequence[str], k: int, mask: np.ndarray | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
        """(row numbers, scores) of the top k texts for each query, best first; rows where
        `mask` is False never appear, nor do texts sharing no token with the query."""
        k = min(k, self.size)
        weights = None if mask is None else mask.astype(np.float32)
        out = []
        for q in queries:
            tokens = [t for t in tokenize(q) if t in self._vocab]
            if not tokens or k == 0:
                out.append((np.empty(0, np.int64), np.empty(0, np.float32)))
                continue
            rows, scores = self._bm25.retrieve([tokens], k=k, show_progress=False, n_threads=1, weight_mask=weights)
            keep = scores[0] > 0
            out.append((rows[0][keep].astype(np.int64), scores[0][keep].astype(np.float32)))
        return out

    def scores(self, query: str) -> np.ndarray:
        """BM25 score of `query` against every text ([size] float32; 0 where nothing matches)."""
        tokens = [t for t in tokenize(query) if t in self._vocab]
        if not tokens:
            return np.zeros(self.size, np.float32)
        return np.asarray(self._bm25.get_scores(tokens), dtype=np.float32)
