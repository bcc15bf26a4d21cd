"""Which language a text is in: chunks get a `lang` metadata value (ISO 639-1 where one exists)
that filters can use, `{"lang": "ja"}`, and that BM25 analyses them by (analysis.py), and a
query the language(s) BM25 analyses it in.

py3langid (langid.py's model: byte n-grams, naive Bayes, 97 languages, BSD-3-Clause) is used
because it is small (4 MB, numpy only), fast (about 0.1 ms a chunk) and accurate on chunk-sized
text (eval/language_id.py measures it on NTREX-128). A guess below MIN_CONFIDENCE (code,
numbers, a few words) is no answer: the chunk then takes its document's language.
"""

from __future__ import annotations

import threading

MIN_CONFIDENCE = 0.5
# Enough text for the guess; the model reads bytes, so more costs time and adds little.
READ_CHARS = 2000

_identifier = None
_lock = threading.Lock()


def _model():
    global _identifier
    if _identifier is None:
        with _lock:
            if _identifier is None:
                from py3langid.langid import MODEL_FILE, LanguageIdentifier

                _identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    return _identifier


def identify(text: str) -> tuple[str, float]:
    """(language code, confidence in [0, 1]) of the model's best guess."""
    if not text.strip():
        return "", 0.0
    code, confidence = _model().classify(text[:READ_CHARS])
    return str(code), float(confidence)


def language_of(text: str, default: str | None = None) -> str | None:
    """The language of `text` if the model is confident, else `default`."""
    code, confidence = identify(text)
    return code if confidence >= MIN_CONFIDENCE else default
