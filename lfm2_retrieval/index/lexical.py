"""Lexical matching with BM25 (bm25s), for any script and language mix.

Texts become terms by their language's analysis (analysis.py: stop words, stems, title field).
Scores are Lucene's BM25; their statistics are those of the whole collection. With
`Analysis.language_statistics` (off by default), IDF is taken within the query's language and
average length within each chunk's: in a collection of eight languages "install" is in many
English chunks and few others, so across the collection it looks rare. Measured on the handbook's
dev questions, that lost (lexical MRR@10 0.606 -> 0.447; docs/indexing.md): the collection-wide
IDF lifts every query word alike, which favours chunks matching more of them. IDF within the
*chunk's* language lost too: a stray English word in a German page is rare among German pages.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .analysis import Analysis, LexicalQuery, query_languages, tokenize
from .storage import load_npy, save_npy

__all__ = ["BM25Index", "LexicalQuery", "TermStatistics", "tokenize", "lucene_idf"]

EMPTY_TOKEN = "\u2400"  # stands in for a text with no token at all
LENGTHS = "lengths.npy"
ROW_LANGUAGES = "row_languages.npy"  # each text's language, as a position in size.json's "languages"
TERM_LANGUAGES = "term_languages.npy"  # sorted term id * languages + language, one per pair that occurs
TERM_LANGUAGE_DF = "term_language_df.npy"  # how many texts of that language hold that term
# Pseudo-texts of the whole collection mixed into each language's statistics: a language with a
# handful of chunks gets the collection's IDF, one with thousands its own (a Bayesian prior).
PRIOR_TEXTS = 100


@dataclass
class TermStatistics:
    """BM25's statistics of a collection for one query's terms, by chunk language ("" where no
    language is known): each part (segment, shard) gives its own, and their sum is the
    collection's, so a text's score never depends on how the collection is split."""

    docs: dict[str, int]  # texts per language
    lengths: dict[str, int] | None  # their terms per language (None: a part stored no lengths)
    df: dict[str, dict[str, int]]  # term -> language -> texts holding it

    def __add__(self, other: "TermStatistics") -> "TermStatistics":
        df = {t: dict(by) for t, by in self.df.items()}
        for t, by in other.df.items():
            mine = df.setdefault(t, {})
            for lang, n in by.items():
                mine[lang] = mine.get(lang, 0) + n
        lengths = None if self.lengths is None or other.lengths is None else _add(self.lengths, other.lengths)
        return TermStatistics(_add(self.docs, other.docs), lengths, df)

    @classmethod
    def total(cls, parts: Iterable["TermStatistics"]) -> "TermStatistics":
        out = cls({}, {}, {})
        for part in parts:
            out = out + part
        return out

    @property
    def n_docs(self) -> int:
        return sum(self.docs.values())


def _add(a: dict[str, int], b: dict[str, int]) -> dict[str, int]:
    return {k: a.get(k, 0) + b.get(k, 0) for k in a.keys() | b.keys()}


def lucene_idf(df: np.ndarray, n_docs) -> np.ndarray:
    """BM25's inverse document frequency as Lucene (and bm25s's "lucene" method) computes it."""
    df = np.asarray(df, dtype=np.float64)
    return np.log1p((n_docs - df + 0.5) / (df + 0.5))


class SavedBM25:
    """The parts of a saved `bm25s.BM25` a search reads: its parameters, vocabulary and score
    matrix (CSC: one column of precomputed scores per term), memory-mapped.

    Read here from bm25s's own files rather than through `bm25s.BM25.load`, because importing
    bm25s imports numba (a quarter of a second on two cores) and a lexical search from the shell
    should answer in well under one. bm25s still writes them (`BM25Index.build`, `save`);
    tests/test_lexical_analysis.py checks both readers agree."""

    def __init__(self, params: dict, vocab_dict: dict[str, int], scores: dict[str, np.ndarray]) -> None:
        self.b = float(params["b"])
        self.vocab_dict = vocab_dict
        self.scores = scores

    @classmethod
    def load(cls, folder: Path) -> "SavedBM25":
        params = json.loads((folder / "params.index.json").read_text())
        vocab = json.loads((folder / "vocab.index.json").read_text(encoding="utf-8"))
        scores = {key: load_npy(folder / f"{key}.csc.index.npy", mmap_mode="r")
                  for key in ("data", "indices", "indptr")}
        scores["num_docs"] = params["num_docs"]
        return cls(params, vocab, scores)

    def get_scores(self, terms: Sequence[str]) -> np.ndarray:
        """Every text's BM25 score for `terms`, as bm25s's `get_scores` gives it: the sum of each
        known term's column, a term as often as it occurs in `terms`. ("lucene" scoring: no
        non-occurrence scores to add.)"""
        data, indices, indptr = (np.asarray(self.scores[key]) for key in ("data", "indices", "indptr"))
        total = np.zeros(int(self.scores["num_docs"]), np.float32)
        for term in terms:
            column = self.vocab_dict.get(term)
            if column is not None:
                start, end = indptr[column], indptr[column + 1]
                total[indices[start:end]] += data[start:end]  # a column names each text once
        return total


class BM25Index:
    """BM25 over a fixed list of texts (bm25s, Lucene's scoring variant); saved and memory-mapped.

    An index of several parts (the segments of a MultiVectorIndex, the shards of a sharded one)
    scores with the statistics of the whole collection, as Lucene's searcher aggregates them:
    each part's `statistics(query)` are summed, and `search(..., collection=...)` turns each
    query term's precomputed per-part score into the collection's. bm25s stores
    s = idf * tf / (tf + k1 * L_part) per (term, text) and no term frequency; with each text's
    length stored (lengths.npy), r = s / idf recovers tf / (tf + k1 * L_part), and
    idf' * r L_part / (r L_part + (1 - r) L') is exactly the score with the wanted IDF idf' and
    length normalisation L' (the collection's average length, or its language's). Parts written
    before lengths were stored keep their own average length.

    Each text's language (row_languages.npy) scopes the query's terms: a text meets the query
    stemmed as the text was, without its stop words or the query language's (analysis.py);
    with language statistics, IDF is counted among the texts of
    the query's language (term_languages.npy: how many texts of each language hold each term)
    and average length among the text's own language's."""

    def __init__(self, bm25, size: int, lengths: np.ndarray | None = None, analysis: Analysis = Analysis.PLAIN,
                 languages: Sequence[str] = ("",), row_languages: np.ndarray | None = None,
                 term_languages: tuple[np.ndarray, np.ndarray] | None = None) -> None:
        self._bm25 = bm25
        self.size = size
        self.analysis = analysis
        self.languages = list(languages)
        # Tokens of each text, as BM25 counts them (None: not stored).
        self.lengths = None if lengths is None else np.asarray(lengths)
        # Their sum, once: every search of a larger collection asks for it.
        self.total_length = None if lengths is None else int(np.sum(lengths, dtype=np.int64))
        self._vocab = bm25.vocab_dict
        # The score matrix's arrays as plain ndarrays over the same mapped memory: every slice of
        # a np.memmap builds a memmap object, which was a third of a lexical search's time.
        self._data, self._indices, self._indptr = (
            np.asarray(bm25.scores[key]) for key in ("data", "indices", "indptr")
        )
        n_langs = len(self.languages)
        self._language_position = {lang: j for j, lang in enumerate(self.languages)}
        self._row_languages = None if row_languages is None or n_langs == 1 else np.asarray(row_languages)
        self._term_languages = term_languages if n_langs > 1 else None
        self._language_docs = (np.array([size], np.int64) if self._row_languages is None
                               else np.bincount(self._row_languages, minlength=n_langs))
        self._language_lengths = None if self.lengths is None else (
            np.array([self.total_length], np.int64) if self._row_languages is None
            else np.bincount(self._row_languages, weights=self.lengths, minlength=n_langs).astype(np.int64))

    @classmethod
    def build(cls, texts: Iterable[str], languages: Iterable[str] | None = None, titles: Iterable[str] | None = None,
              analysis: Analysis = Analysis.PLAIN, k1: float = 1.2, b: float = 0.75) -> "BM25Index":
        """BM25 of `texts`, each analysed in its language (`languages`: codes, "" or None where
        unknown) with its title (`titles`) as a second field."""
        import bm25s
        from bm25s.tokenization import Tokenized

        # Token ids as compact arrays, built one text at a time: a million chunks never sit in
        # memory as lists of Python strings.
        vocab: dict[str, int] = {}
        positions: dict[str, int] = {}
        ids, rows = [], []
        langs = iter(languages) if languages is not None else None
        heads = iter(titles) if titles is not None else None
        for text in texts:
            lang = (next(langs) or "") if langs is not None else ""
            terms = analysis.terms(text, lang, (next(heads) or "") if heads is not None else "")
            ids.append(np.fromiter((vocab.setdefault(t, len(vocab)) for t in terms or [EMPTY_TOKEN]), np.int32))
            rows.append(positions.setdefault(lang, len(positions)))  # an empty text still takes its row
        bm25 = bm25s.BM25(k1=k1, b=b)
        bm25.index(Tokenized(ids=ids, vocab=vocab), show_progress=False)
        lengths = np.array([len(i) for i in ids], np.int32)
        names = list(positions) or [""]
        row_languages = np.array(rows, np.uint16)
        index = cls(bm25, len(ids), lengths, analysis, names, row_languages)
        if len(names) > 1 and analysis.language_statistics:  # only statistics per language read it
            index._term_languages = index._count_term_languages(row_languages)
        return index

    def _count_term_languages(self, row_languages: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(sorted term id * languages + language, texts) for every pair that occurs."""
        n_langs = len(self.languages)
        terms = np.repeat(np.arange(len(self._indptr) - 1, dtype=np.int64), np.diff(self._indptr))
        keys, counts = np.unique(terms * n_langs + row_languages[self._indices], return_counts=True)
        return keys, counts.astype(np.int32)

    def save(self, folder: Path) -> None:
        folder = Path(folder)
        self._bm25.save(str(folder))
        (folder / "size.json").write_text(json.dumps({"size": self.size, "analysis": self.analysis.to_json(),
                                                      "languages": self.languages}, ensure_ascii=False))
        if self.lengths is not None:
            save_npy(folder / LENGTHS, self.lengths)
        if self._row_languages is not None:
            save_npy(folder / ROW_LANGUAGES, self._row_languages)
        if self._term_languages is not None:
            save_npy(folder / TERM_LANGUAGES, self._term_languages[0])
            save_npy(folder / TERM_LANGUAGE_DF, self._term_languages[1])

    @classmethod
    def load(cls, folder: Path) -> "BM25Index":
        folder = Path(folder)
        info = json.loads((folder / "size.json").read_text())
        # Parts written before analysis existed: plain words, no languages.
        analysis, languages = Analysis.from_json(info.get("analysis")), info.get("languages") or [""]

        def optional(name):
            return load_npy(folder / name, mmap_mode="r") if (folder / name).exists() else None

        rows, keys, df = optional(ROW_LANGUAGES), optional(TERM_LANGUAGES), optional(TERM_LANGUAGE_DF)
        return cls(SavedBM25.load(folder), info["size"], optional(LENGTHS), analysis, languages,
                   None if rows is None else np.asarray(rows), None if keys is None else (keys, df))

    # ------------------------------------------------------------------ statistics
    def language_docs(self) -> dict[str, int]:
        """Texts per language."""
        return {lang: int(n) for lang, n in zip(self.languages, self._language_docs)}

    def resolve(self, query: "str | LexicalQuery") -> LexicalQuery:
        """A query with the languages to analyse it in (those of this index alone for a text:
        a collection of several parts resolves it once for all of them)."""
        if isinstance(query, LexicalQuery):
            return query
        return LexicalQuery(query, query_languages(query, self.language_docs()))

    def _query_terms(self, query: LexicalQuery) -> tuple[list[str], np.ndarray, np.ndarray | None]:
        """The query's terms this index holds, their term ids, and which of this index's
        languages each applies to ([terms, languages] bool; None: all of them)."""
        by_term = self.analysis.query_terms(query.text, query.languages, self.languages)
        terms = [t for t in by_term if t in self._vocab]
        ids = np.fromiter((self._vocab[t] for t in terms), np.int64, len(terms))
        if all(len(by_term[t]) == len(self.languages) for t in terms):
            return terms, ids, None
        allowed = np.zeros((len(terms), len(self.languages)), bool)
        for i, t in enumerate(terms):
            allowed[i, [self._language_position[lang] for lang in by_term[t]]] = True
        return terms, ids, allowed

    def _term_language_df(self, ids: np.ndarray) -> np.ndarray:
        """[terms, languages] how many texts of each language hold each term (without the
        table, all of them under the first language: only their sum is read then)."""
        if self._term_languages is None:
            out = np.zeros((len(ids), len(self.languages)), np.int64)
            out[:, 0] = self._indptr[ids + 1] - self._indptr[ids]
            return out
        keys, df = self._term_languages
        n_langs = len(self.languages)
        lo, hi = np.searchsorted(keys, ids * n_langs), np.searchsorted(keys, ids * n_langs + n_langs)
        out = np.zeros((len(ids), n_langs), np.int64)
        counts = hi - lo
        at = np.repeat(lo - np.cumsum(counts) + counts, counts) + np.arange(counts.sum())
        out[np.repeat(np.arange(len(ids)), counts), np.asarray(keys[at]) % n_langs] = df[at]
        return out

    def statistics(self, query: "str | LexicalQuery") -> TermStatistics:
        """This index's share of the collection statistics for `query` (summed by the caller)."""
        query = self.resolve(query)
        terms, ids, _ = self._query_terms(query)
        table = self._term_language_df(ids)
        df = {t: {self.languages[j]: int(n) for j, n in enumerate(row) if n} for t, row in zip(terms, table)}
        # Terms the query has and this index lacks still count, with none: so do the others.
        for t in self.analysis.query_terms(query.text, query.languages, self.languages):
            df.setdefault(t, {})
        lengths = None if self._language_lengths is None else {
            lang: int(n) for lang, n in zip(self.languages, self._language_lengths)}
        return TermStatistics(self.language_docs(), lengths, df)

    # ------------------------------------------------------------------ search
    def search(self, queries: Sequence["str | LexicalQuery"], k: int, mask: np.ndarray | None = None,
               collection: TermStatistics | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
        """(row numbers, scores) of the top k texts for each query, best first; rows where
        `mask` is False never appear, nor do texts sharing no term with the query.

        collection: the statistics of the whole collection this index is a part of (the sum of
        every part's `statistics(query)`); scores then use its IDF and average length (see the
        class). One collection serves every query, so pass one query with it."""
        k = min(k, self.size)
        out = []
        for q in map(self.resolve, queries):
            terms, ids, allowed = self._query_terms(q)
            if not terms or k == 0:
                out.append((np.empty(0, np.int64), np.empty(0, np.float32)))
                continue
            statistics = collection
            if statistics is None and self.analysis.language_statistics:
                statistics = self.statistics(q)  # its own, by language
            scores = self._scores(q, terms, ids, allowed, statistics)
            # Only texts holding a query term can rank: partition those, not the whole segment
            # (a third of a search's time at 100,000 texts).
            found = np.flatnonzero(scores > 0)
            if mask is not None:
                found = found[mask[found]]
            if k < len(found):
                found = found[np.argpartition(-scores[found], k - 1)[:k]]
            top = found[np.argsort(-scores[found], kind="stable")]
            out.append((top.astype(np.int64), scores[top].astype(np.float32)))
        return out

    def _scores(self, query: LexicalQuery, terms: list[str], ids: np.ndarray, allowed: np.ndarray | None,
                collection: TermStatistics | None) -> np.ndarray:
        """Sum over the query's terms of their precomputed BM25 columns, each text counting only
        the terms of its language's analysis, re-weighted to the collection's statistics (as
        they are without a collection). All the terms' columns at once: a few array operations
        a query, not a few per term."""
        starts = self._indptr[ids].astype(np.int64)
        counts = self._indptr[ids + 1].astype(np.int64) - starts
        positions = np.repeat(starts - np.cumsum(counts) + counts, counts) + np.arange(counts.sum())
        rows, part = self._indices[positions], np.asarray(self._data[positions], np.float64)
        term_of = np.repeat(np.arange(len(ids)), counts)
        langs = None if self._row_languages is None else self._row_languages[rows]
        if allowed is not None:
            keep = allowed[term_of, langs]
            rows, part, term_of, langs = rows[keep], part[keep], term_of[keep], langs[keep]
        if collection is not None:
            part = self._rescored(query, terms, ids, term_of, rows, langs, part, collection)
        # Only the texts holding a query term are touched: the query's cost, not the segment's.
        return np.bincount(rows, weights=part, minlength=self.size).astype(np.float32)

    def _rescored(self, query: LexicalQuery, terms, ids, term_of, rows, langs, part,
                  collection: TermStatistics) -> np.ndarray:
        """Each posting's score with the collection's IDF and average length: the whole
        collection's, or (language statistics) IDF among the texts of the query's language (of
        the query's languages, the one where the term is most at home) and average length among
        those of the text's, each smoothed towards the whole collection's by PRIOR_TEXTS
        pseudo-texts."""
        n_all = collection.n_docs
        df_all = np.array([sum(collection.df.get(t, {}).values()) for t in terms], np.float64)
        own = lucene_idf(self._indptr[ids + 1] - self._indptr[ids], self.size)[term_of]
        total_length = None if collection.lengths is None else sum(collection.lengths.values())
        average = total_length / n_all if total_length and n_all else None
        if self.analysis.language_statistics:
            # What a word says in the query's language; unsure of it, in the one of the query's
            # languages where the word is most at home (its lowest IDF among them).
            n_query = np.array([collection.docs.get(lang, 0) for lang in query.languages], np.float64)
            df_query = np.array([[collection.df.get(t, {}).get(lang, 0) for lang in query.languages] for t in terms],
                                np.float64).reshape(len(terms), len(query.languages))
            share = (df_all / max(n_all, 1))[:, None]
            wanted = lucene_idf(df_query + PRIOR_TEXTS * share, n_query + PRIOR_TEXTS).min(axis=1)[term_of]
            if average is not None:
                n_lang = np.array([collection.docs.get(lang, 0) for lang in self.languages], np.float64)
                length_lang = np.array([collection.lengths.get(lang, 0) for lang in self.languages], np.float64)
                average = ((length_lang + PRIOR_TEXTS * average) / (n_lang + PRIOR_TEXTS))[
                    0 if langs is None else langs]
        else:
            wanted = lucene_idf(df_all, n_all)[term_of]
        if self.lengths is None or average is None or not self.total_length:
            return part * (wanted / np.maximum(own, 1e-9))
        b = self._bm25.b  # (k1 cancels out of the conversion below)
        r = np.clip(part / np.maximum(own, 1e-12), 0.0, 1.0 - 1e-12)  # tf / (tf + k1 L_part)
        lengths = np.asarray(self.lengths[rows], np.float64)
        lp = 1 - b + b * lengths / (self.total_length / self.size)  # L of each text with this part's average
        lc = 1 - b + b * lengths / average  # and with the collection's (or its language's)
        return wanted * r * lp / (r * lp + (1 - r) * lc)

    def scores(self, query: str) -> np.ndarray:
        """BM25 score of `query` against every text ([size] float32; 0 where nothing matches)."""
        terms, _, _ = self._query_terms(self.resolve(query))
        if not terms:
            return np.zeros(self.size, np.float32)
        return np.asarray(self._bm25.get_scores(terms), dtype=np.float32)
