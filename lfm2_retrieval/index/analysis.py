"""How text becomes lexical terms, per language: the analysis of the BM25 leg.

Lucene's and Elasticsearch's language analyzers, in small: words are lower-cased (NFKC), the
language's stop words dropped, the rest reduced to their Snowball stem. A chunk is analyzed in
its own language (its `lang` metadata, language.py); a query is analyzed in the language of each
chunk it is matched against, so a Russian query meets Russian chunks with Russian stems and
stop words, and an English one English chunks with English ones, whatever the mix of the
collection and however short or unsure the query (no language guess is needed for it). Words
of other languages in a query (names, code, "OAuth2") stay as they are in any analysis.

- Stemmers: Snowball's, through PyStemmer (a C extension, maintained with Snowball itself), for
  the ~30 languages it has (SNOWBALL).
- Stop words: the lists bm25s ships (NLTK's, which are Snowball's lists; English is NLTK's 179
  words, as Lucene's 33 keep "how", "do", "what"), for 12 languages (STOP_WORDS). A text made of
  stop words only keeps them: "to be or not to be" is still a query.
- Unspaced scripts (Chinese, Japanese, Thai...) keep their character bigrams (lexical.py): they
  have no words to stem.

`Analysis.PLAIN` is what the index did before analysis existed (lower-cased words, no language):
segments that record no analysis are read with it, and `lfm2-search index --analysis plain`
keeps it. `title_weight` repeats each chunk's title and heading path that many times after its
text, which is BM25F with one length normalisation for both fields (Robertson, Zaragoza and
Taylor 2004): a page whose title says the query outranks one that mentions it in passing.
`language_statistics` computes IDF and average length within each language (lexical.py).
"""

from __future__ import annotations

import re
import threading
import unicodedata
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Any

_WORD = re.compile(r"\w+", re.UNICODE)
# Han, Hiragana, Katakana, Hangul, Thai, Lao, Khmer, Myanmar.
_NO_SPACE = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af"
                       r"\u0e00-\u0eff\u1780-\u17ff\u1000-\u109f]+")


def words_and_bigrams(text: str) -> list[tuple[str, bool]]:
    """(token, is a word) of a lower-cased text: runs of letters and digits, and for scripts
    written without spaces, their characters and overlapping character bigrams (the usual
    choice for BM25 on CJK text; Korean uses spaces, but its words carry particles, so Hangul
    runs get bigrams as well). Only words are stemmed or stop words."""
    tokens: list[tuple[str, bool]] = []
    for word in _WORD.findall(text):
        pos = 0
        for m in _NO_SPACE.finditer(word):
            if m.start() > pos:
                tokens.append((word[pos:m.start()], True))
            run = m.group()
            tokens.extend((c, False) for c in run)  # single characters keep one-character words findable
            tokens.extend((run[i:i + 2], False) for i in range(len(run) - 1))
            pos = m.end()
        if pos < len(word):
            tokens.append((word[pos:], True))
    return tokens


def tokenize(text: str) -> list[str]:
    """Lexical tokens of any text, in no language: lower-cased words, bigrams for unspaced scripts."""
    return [t for t, _ in words_and_bigrams(unicodedata.normalize("NFKC", text).lower())]

# ISO 639-1 code (as language.py gives it) -> Snowball stemmer.
SNOWBALL = {
    "ar": "arabic", "hy": "armenian", "eu": "basque", "ca": "catalan", "cs": "czech", "da": "danish",
    "nl": "dutch", "en": "english", "eo": "esperanto", "et": "estonian", "fi": "finnish", "fr": "french",
    "de": "german", "el": "greek", "hi": "hindi", "hu": "hungarian", "id": "indonesian", "ga": "irish",
    "it": "italian", "lt": "lithuanian", "ne": "nepali", "no": "norwegian", "nb": "norwegian",
    "nn": "norwegian", "fa": "persian", "pl": "polish", "pt": "portuguese", "ro": "romanian",
    "ru": "russian", "sr": "serbian", "st": "sesotho", "es": "spanish", "sv": "swedish", "ta": "tamil",
    "tr": "turkish", "yi": "yiddish",
}
# ISO 639-1 code -> the name of its list in bm25s.stopwords.
STOP_WORDS = {
    "en": "STOPWORDS_EN_PLUS", "de": "STOPWORDS_GERMAN", "nl": "STOPWORDS_DUTCH", "fr": "STOPWORDS_FRENCH",
    "es": "STOPWORDS_SPANISH", "pt": "STOPWORDS_PORTUGUESE", "it": "STOPWORDS_ITALIAN", "ru": "STOPWORDS_RUSSIAN",
    "sv": "STOPWORDS_SWEDISH", "no": "STOPWORDS_NORWEGIAN", "nb": "STOPWORDS_NORWEGIAN",
    "da": "STOPWORDS_DANISH", "tr": "STOPWORDS_TURKISH",
}


@dataclass(frozen=True)
class Analysis:
    """How an index turns text into BM25 terms (recorded in its manifest and in each segment)."""

    stop_words: bool = True
    stemming: bool = True
    title_weight: int = 1  # times the title and heading path are added to a chunk's terms (0: not)
    language_statistics: bool = True  # IDF and average length within each chunk's language

    PLAIN = None  # set below: the analysis of indexes written before analysis existed

    @classmethod
    def from_json(cls, raw: dict[str, Any] | None) -> "Analysis":
        if not raw:
            return cls.PLAIN
        known = {k: raw[k] for k in ("stop_words", "stemming", "title_weight", "language_statistics") if k in raw}
        return cls(**known)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def by_language(self) -> bool:
        """Whether a text's terms depend on its language."""
        return self.stop_words or self.stemming

    def describe(self) -> str:
        if self == self.PLAIN:
            return "plain (lower-cased words, no language)"
        parts = [p for p, on in (("stop words", self.stop_words), ("stemming", self.stemming),
                                 ("statistics per language", self.language_statistics)) if on]
        if self.title_weight:
            parts.append(f"title x{self.title_weight}")
        return ", ".join(parts) or "plain words"

    def key(self, lang: str) -> tuple[str | None, str | None]:
        """What analysing in `lang` does (stemmer, stop-word list): languages with the same key
        make the same terms."""
        return (SNOWBALL.get(lang) if self.stemming else None, STOP_WORDS.get(lang) if self.stop_words else None)

    def terms(self, text: str, lang: str = "", title: str = "") -> list[str]:
        """The terms a chunk is indexed by: its text's, then its title's title_weight times."""
        out = _analyze(text, *self.key(lang), keep_all_stop_words=False)
        if title and self.title_weight:
            out += _analyze(title, *self.key(lang), keep_all_stop_words=False) * self.title_weight
        return out

    def query_terms(self, text: str, languages: Sequence[str]) -> dict[str, set[str]]:
        """A query's terms in each of `languages` (the languages of the chunks it is matched
        against): {term: the languages whose analysis makes it}."""
        return _query_terms(self, text, tuple(languages))


Analysis.PLAIN = Analysis(stop_words=False, stemming=False, title_weight=0, language_statistics=False)


@lru_cache(maxsize=1024)  # a query is matched against every segment: analyse it once per language mix
def _query_terms(analysis: Analysis, text: str, languages: tuple[str, ...]) -> dict[str, set[str]]:
    by_key: dict[tuple, list[str]] = {}
    for lang in languages:
        by_key.setdefault(analysis.key(lang), []).append(lang)
    out: dict[str, set[str]] = {}
    for (stemmer, stops), langs in by_key.items():
        for term in dict.fromkeys(_analyze(text, stemmer, stops, keep_all_stop_words=True)):
            out.setdefault(term, set()).update(langs)
    return out


def _analyze(text: str, stemmer: str | None, stops: str | None, keep_all_stop_words: bool) -> list[str]:
    tokens = words_and_bigrams(unicodedata.normalize("NFKC", text).lower())
    if stops is not None:
        stop = stop_words(stops)
        kept = [(t, is_word) for t, is_word in tokens if not (is_word and (t in stop or _unaccented(t) in stop))]
        if kept or not keep_all_stop_words:
            tokens = kept
    if stemmer is None:
        return [t for t, _ in tokens]
    words = [t for t, is_word in tokens if is_word]
    stems = iter(_stemmer(stemmer).stemWords(words)) if words else iter(())
    return [next(stems) if is_word else t for t, is_word in tokens]


def _unaccented(word: str) -> str:
    """A Latin word without its accents ("cómo" -> "como": NLTK's Spanish list has only the
    latter); other scripts as they are (Cyrillic "й" is a letter of its own, not "и" + breve)."""
    if word.isascii():
        return word
    bare = "".join(c for c in unicodedata.normalize("NFD", word) if not unicodedata.combining(c))
    return bare if bare.isascii() else word


@lru_cache(maxsize=None)
def stop_words(name: str) -> frozenset[str]:
    import bm25s.stopwords

    return frozenset(unicodedata.normalize("NFKC", w).lower() for w in getattr(bm25s.stopwords, name))


_local = threading.local()  # PyStemmer's stemmers keep a cache and are not thread-safe: one per thread


def _stemmer(name: str):
    stemmers = getattr(_local, "stemmers", None)
    if stemmers is None:
        stemmers = _local.stemmers = {}
    if name not in stemmers:
        import Stemmer

        stemmers[name] = Stemmer.Stemmer(name)
    return stemmers[name]

