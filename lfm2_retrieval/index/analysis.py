"""How text becomes lexical terms, per language: the analysis of the BM25 leg.

Lucene's and Elasticsearch's language analyzers, in small: words are lower-cased (NFKC), the
language's stop words dropped, the rest reduced to their Snowball stem. A chunk is analysed in
its own language (its `lang` metadata, language.py). A query's language is language.py's guess
(`query_languages`), or, when the guess is unsure (a few words, a name), the collection's main
languages. Each chunk meets the query stemmed as the chunk itself was, without the stop words of
the chunk's language and of the query's: a Russian question meets Russian pages with Russian
stems, and "how do I" is nothing to an English page or a German one. Names, code and "OAuth2"
come out as they went in.

- Stemmers: Snowball's, through PyStemmer (a C extension, maintained with Snowball itself), for
  the ~30 languages it has (SNOWBALL).
- Stop words: the lists bm25s ships (NLTK's, which are Snowball's lists; English is NLTK's 179
  words, as Lucene's 33 keep "how", "do", "what"), for 12 languages (STOP_WORDS). A text made of
  stop words only keeps them: "to be or not to be" is still a query.
- Unspaced scripts (Chinese, Japanese, Thai...) keep their character bigrams (words_and_bigrams):
  they have no words to stem.

`Analysis.PLAIN` is what the index did before analysis existed (lower-cased words, no language):
segments that record no analysis are read with it, and `lfm2-search index --analysis plain`
keeps it. `title_weight` repeats each chunk's title and heading path that many times after its
text, which is BM25F with one length normalisation for both fields (Robertson, Zaragoza and
Taylor 2004): a page whose title says the query outranks one that mentions it in passing.
`language_statistics` takes IDF within the query's language and average length within the
chunk's (lexical.py): measured, it lost to the whole collection's, so it is off by default.
"""

from __future__ import annotations

import importlib.util
import re
import threading
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from .language import MIN_CONFIDENCE, identify

_WORD = re.compile(r"\w+", re.UNICODE)
# Han, Hiragana, Katakana, Hangul, Thai, Lao, Khmer, Myanmar.
UNSPACED = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af"
                       r"\u0e00-\u0eff\u1780-\u17ff\u1000-\u109f]+")


def words_and_bigrams(text: str) -> list[tuple[str, bool]]:
    """(token, is a word) of a lower-cased text: runs of letters and digits, and for scripts
    written without spaces, their characters and overlapping character bigrams (the usual
    choice for BM25 on CJK text; Korean uses spaces, but its words carry particles, so Hangul
    runs get bigrams as well). Only words are stemmed or stop words."""
    tokens: list[tuple[str, bool]] = []
    for word in _WORD.findall(text):
        pos = 0
        for m in UNSPACED.finditer(word):
            if m.start() > pos:
                tokens.append((word[pos:m.start()], True))
            run = m.group()
            tokens.extend((c, False) for c in run)  # single characters keep one-character words findable
            tokens.extend((run[i:i + 2], False) for i in range(len(run) - 1))
            pos = m.end()
        if pos < len(word):
            tokens.append((word[pos:], True))
    return tokens


def stem(word: str, stemmer: str | None) -> str:
    """A word as an analysis with `stemmer` indexes it (Analysis.key's stemmer; None: none)."""
    word = unicodedata.normalize("NFKC", word).lower()
    return _stemmer(stemmer).stemWord(word) if stemmer else word


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


# A collection's main languages: those of at least this share of its chunks, at most this many.
MAIN_LANGUAGE_SHARE = 0.1
MAX_QUERY_LANGUAGES = 3


@dataclass(frozen=True)
class LexicalQuery:
    """A query as BM25 reads it: its text and the languages it is analysed in, likeliest first
    (chunks of a language not among them meet the first one's terms)."""

    text: str
    languages: tuple[str, ...] = ("",)


def query_languages(text: str, language_docs: Mapping[str, int]) -> tuple[str, ...]:
    """The languages to analyse a query in: its own when language.py is sure of it, else the
    collection's main languages (`language_docs`: chunks per language), the guess first if it
    is one of them."""
    code, confidence = _identify(text)
    if confidence >= MIN_CONFIDENCE:
        return (code,)
    total = sum(language_docs.values())
    main = sorted((lang for lang, n in language_docs.items() if lang and n >= MAIN_LANGUAGE_SHARE * total),
                  key=lambda lang: (lang != code, -language_docs[lang]))[:MAX_QUERY_LANGUAGES]
    return tuple(main) or ((code,) if code else ("",))


@lru_cache(maxsize=4096)  # a query is resolved once per request, and asked again by shards and fusions
def _identify(text: str) -> tuple[str, float]:
    return identify(text)


def forget_queries() -> None:
    """Empty the caches of query languages and terms (benchmarks time a query's first search)."""
    _identify.cache_clear()
    _query_terms.cache_clear()


@dataclass(frozen=True)
class Analysis:
    """How an index turns text into BM25 terms (recorded in its manifest and in each segment)."""

    stop_words: bool = True
    stemming: bool = True
    title_weight: int = 3  # times the title and heading path are added to a chunk's terms (0: not)
    # IDF within the query's language, average length within the chunk's (measured worse on
    # the dev questions than the whole collection's: docs/indexing.md)
    language_statistics: bool = False

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
        stemmer, stops = self.key(lang)
        lists = (stops,) if stops else ()
        out = _analyze(text, stemmer, lists, keep_all_stop_words=False)
        if title and self.title_weight:
            out += _analyze(title, stemmer, lists, keep_all_stop_words=False) * self.title_weight
        return out

    def query_terms(self, text: str, query_languages: Sequence[str],
                    chunk_languages: Sequence[str]) -> dict[str, set[str]]:
        """A query's terms for the chunks of each of `chunk_languages`: {term: the chunk languages
        that meet it}. A chunk meets the query stemmed as the chunk was (so names, code and
        cognates come out alike) without the stop words of its own language or of the query's:
        "how do I" says nothing to an English page, and nothing to a German one either."""
        return _query_terms(self, text, tuple(query_languages), tuple(chunk_languages))


Analysis.PLAIN = Analysis(stop_words=False, stemming=False, title_weight=0, language_statistics=False)


@lru_cache(maxsize=4096)  # a query meets every segment: analyse it once per language mix
def _query_terms(analysis: Analysis, text: str, query_languages: tuple[str, ...],
                 chunk_languages: tuple[str, ...]) -> dict[str, set[str]]:
    tokens = words_and_bigrams(unicodedata.normalize("NFKC", text).lower())
    out: dict[str, set[str]] = {}
    for (stemmer, lists), langs in _groups(analysis, query_languages, chunk_languages):
        for term in dict.fromkeys(_analyze(tokens, stemmer, lists, keep_all_stop_words=True)):
            out.setdefault(term, set()).update(langs)
    return out


@lru_cache(maxsize=256)  # a segment's languages and the query's: a few combinations, met again and again
def _groups(analysis: Analysis, query_languages: tuple[str, ...],
            chunk_languages: tuple[str, ...]) -> list[tuple[tuple, tuple[str, ...]]]:
    """((stemmer, stop-word lists), chunk languages) of each analysis the query needs."""
    asked = {analysis.key(lang)[1] for lang in query_languages} - {None}
    by_key: dict[tuple, list[str]] = {}
    for lang in chunk_languages:
        stemmer, stops = analysis.key(lang)
        by_key.setdefault((stemmer, tuple(sorted(asked | ({stops} if stops else set())))), []).append(lang)
    return [(key, tuple(langs)) for key, langs in by_key.items()]


def _analyze(text: str | list[tuple[str, bool]], stemmer: str | None, stop_lists: tuple[str, ...],
             keep_all_stop_words: bool) -> list[str]:
    """Terms of a text (or of its words_and_bigrams, lower-cased, when several analyses share them)."""
    tokens = words_and_bigrams(unicodedata.normalize("NFKC", text).lower()) if isinstance(text, str) else text
    if stop_lists:
        stop = _stop_union(stop_lists)
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


@lru_cache(maxsize=256)
def _stop_union(names: tuple[str, ...]) -> frozenset[str]:
    return frozenset().union(*(stop_words(name) for name in names))


@lru_cache(maxsize=None)
def stop_words(name: str) -> frozenset[str]:
    return frozenset(unicodedata.normalize("NFKC", w).lower() for w in getattr(_bm25s_stop_lists(), name))


@lru_cache(maxsize=1)
def _bm25s_stop_lists():
    """bm25s's `stopwords` module (plain lists of words), loaded from its file on its own:
    `import bm25s.stopwords` would first run bm25s's `__init__`, which imports numba and SciPy
    (0.3 s), on every lexical search from the shell."""
    spec = importlib.util.find_spec("bm25s")  # finds the package without running it
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("bm25s is needed for its stop-word lists: pip install bm25s")
    path = Path(next(iter(spec.submodule_search_locations))) / "stopwords.py"
    module_spec = importlib.util.spec_from_file_location("_lfm2_bm25s_stopwords", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


_local = threading.local()  # PyStemmer's stemmers keep a cache and are not thread-safe: one per thread


def _stemmer(name: str):
    stemmers = getattr(_local, "stemmers", None)
    if stemmers is None:
        stemmers = _local.stemmers = {}
    if name not in stemmers:
        import Stemmer

        stemmers[name] = Stemmer.Stemmer(name)
    return stemmers[name]

