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

from .storage import load_npy, save_npy

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


LENGTHS = "lengths.npy"
# A collection's BM25 statistics: (texts, {token: document frequency}, total length or None).
Collection = tuple


def lucene_idf(df: np.ndarray, n_docs: int) -> np.ndarray:
    """BM25's inverse document frequency as Lucene (and bm25s's "lucene" method) computes it."""
    df = np.asarray(df, dtype=np.float64)
    return np.log1p((n_docs - df + 0.5) / (df + 0.5))


class BM25Index:
    """BM25 over a fixed list of texts (bm25s, Lucene's scoring variant); saved and memory-mapped.

    An index of several parts (the segments of a MultiVectorIndex) scores with statistics of the
    whole collection, as Lucene's searcher aggregates them: `document_frequencies` of each part
    are summed, and `search(..., collection=(n_docs, df))` re-weights each query term's
    precomputed per-part scores by the collection's IDF over the part's own. Document-length
    normalisation follows the collection too: each text's length is stored (lengths.npy), so a
    precomputed score s = idf * tf / (tf + k1 * L_part) is turned exactly into the one with the
    collection's average length, idf' * r L_part / (r L_part + (1 - r) L_all), r = s / idf
    (bm25s keeps no term frequencies; this recovers them). Parts written before lengths were
    stored keep their own average length.

    So a text's BM25 score depends on the collection only, never on how it is split into
    segments or shards."""

    def __init__(self, bm25, size: int, lengths: np.ndarray | None = None) -> None:
        self._bm25 = bm25
        self.size = size
        # Tokens of each text, as BM25 counts them (None: not stored).
        self.lengths = None if lengths is None else np.asarray(lengths)
        # Their sum, once: every search of a larger collection asks for it.
        self.total_length = None if lengths is None else int(np.sum(lengths, dtype=np.int64))
        self._vocab = set(bm25.vocab_dict)
        # The score matrix's arrays as plain ndarrays over the same mapped memory: every slice of
        # a np.memmap builds a memmap object, which was a third of a lexical search's time.
        self._data, self._indices, self._indptr = (
            np.asarray(bm25.scores[key]) for key in ("data", "indices", "indptr")
        )

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
        return cls(bm25, len(ids), np.array([len(i) for i in ids], np.int32))

    def save(self, folder: Path) -> None:
        self._bm25.save(str(folder))
        (Path(folder) / "size.json").write_text(json.dumps({"size": self.size}))
        if self.lengths is not None:
            save_npy(Path(folder) / LENGTHS, self.lengths)

    @classmethod
    def load(cls, folder: Path) -> "BM25Index":
        import bm25s

        size = json.loads((Path(folder) / "size.json").read_text())["size"]
        lengths = load_npy(Path(folder) / LENGTHS, mmap_mode="r") if (Path(folder) / LENGTHS).exists() else None
        return cls(bm25s.BM25.load(str(folder), mmap=True), size, lengths)

    def document_frequencies(self, tokens: Sequence[str]) -> np.ndarray:
        """How many texts of this index hold each token (0 for tokens it has never seen)."""
        indptr = self._indptr
        vocab = self._bm25.vocab_dict
        return np.array([indptr[vocab[t] + 1] - indptr[vocab[t]] if t in vocab else 0 for t in tokens], np.int64)

    def search(self, queries: Sequence[str], k: int, mask: np.ndarray | None = None,
               collection: "Collection | None" = None) -> list[tuple[np.ndarray, np.ndarray]]:
        """(row numbers, scores) of the top k texts for each query, best first; rows where
        `mask` is False never appear, nor do texts sharing no token with the query.

        collection: (number of texts, {token: document frequency}, total length or None) of the
        whole collection this index is a part of; scores then use its IDF and average length
        (see the class)."""
        k = min(k, self.size)
        out = []
        for q in queries:
            tokens = [t for t in tokenize(q) if t in self._vocab]
            if not tokens or k == 0:
                out.append((np.empty(0, np.int64), np.empty(0, np.float32)))
                continue
            scores = self._scores(tokens, collection)
            if mask is not None:
                scores[~mask] = 0.0
            top = np.argpartition(-scores, k - 1)[:k] if k < len(scores) else np.arange(len(scores))
            top = top[np.argsort(-scores[top], kind="stable")]
            top = top[scores[top] > 0]
            out.append((top.astype(np.int64), scores[top].astype(np.float32)))
        return out

    def _scores(self, tokens: list[str], collection: "Collection | None") -> np.ndarray:
        """Sum over the query's tokens of their precomputed BM25 columns, re-weighted to the
        collection's IDF and average length (as they are without a collection). All the
        tokens' columns at once: a few array operations a query, not a few per token."""
        ids = np.array([self._bm25.vocab_dict[t] for t in tokens], np.int64)
        starts, counts = (
            self._indptr[ids].astype(np.int64),
            (self._indptr[ids + 1] - self._indptr[ids]).astype(np.int64),
        )
        positions = np.repeat(starts - np.cumsum(counts) + counts, counts) + np.arange(counts.sum())
        rows, part = self._indices[positions], np.asarray(self._data[positions], np.float64)
        if collection is not None:
            n_docs, df, total_length = (*collection, None)[:3]
            own = np.repeat(lucene_idf(self.document_frequencies(tokens), self.size), counts)
            wanted = np.repeat(lucene_idf([df.get(t, 0) for t in tokens], n_docs), counts)
            if self.lengths is not None and total_length and n_docs and self.total_length:
                b = self._bm25.b  # (k1 cancels out of the conversion below)
                own_average, all_average = self.total_length / self.size, total_length / n_docs
                r = np.clip(part / np.maximum(own, 1e-12), 0.0, 1.0 - 1e-12)  # tf / (tf + k1 L_part)
                lengths = np.asarray(self.lengths[rows], np.float64)
                lp = 1 - b + b * lengths / own_average  # L of each text with this part's average length
                lc = 1 - b + b * lengths / all_average  # and with the collection's
                part = wanted * r * lp / (r * lp + (1 - r) * lc)
            else:
                part = part * (wanted / np.maximum(own, 1e-9))
        # Only the texts holding a query token are touched: the query's cost, not the segment's.
        return np.bincount(rows, weights=part, minlength=self.size).astype(np.float32)

    def scores(self, query: str) -> np.ndarray:
        """BM25 score of `query` against every text ([size] float32; 0 where nothing matches)."""
        tokens = [t for t in tokenize(query) if t in self._vocab]
        if not tokens:
            return np.zeros(self.size, np.float32)
        return np.asarray(self._bm25.get_scores(tokens), dtype=np.float32)
