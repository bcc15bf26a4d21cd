"""Which language a text is in: chunks get a `lang` metadata value (ISO 639-1 where one exists)
that filters can use, `{"lang": "ja"}`, and that BM25 analyses them by (analysis.py), and a
query the language(s) BM25 analyses it in.

py3langid (langid.py's model: byte n-grams, naive Bayes, 97 languages, BSD-3-Clause) is used
because it is small (4 MB, numpy only), fast (about 0.1 ms a chunk) and accurate on chunk-sized
text (eval/language_id.py measures it on NTREX-128). A guess below MIN_CONFIDENCE (code,
numbers, a few words) is no answer: the chunk then takes its document's language.
"""

from __future__ import annotations

import lzma
import os
import shutil
import tempfile
import threading
from pathlib import Path

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
                _identifier = _load_identifier()
    return _identifier


_ARRAYS = ("ptc", "pc", "classes", "nextmove", "nextmove_row", "out_feat")


def _load_identifier():
    """py3langid's identifier, from an unpacked copy of its model where one can be kept.

    The model ships as an LZMA-compressed npz: unpacking it took 0.26 s of every process that
    guesses a language (each lexical search from the shell). Its arrays are kept once as .npy
    files in ~/.cache/lfm2-search/py3langid (or $LFM2_SEARCH_CACHE/py3langid), the large
    probability table memory-mapped: about 25 ms. They are read as py3langid's own loader reads
    them (modelio.load_model); if that layout changes, or the cache cannot be written, the
    packed model is read the slow way."""
    from py3langid.langid import MODEL_DIR, MODEL_FILE, LanguageIdentifier

    try:
        import numpy as np
        from py3langid.modelio import _to_array

        folder = _unpacked(Path(MODEL_DIR) / MODEL_FILE)
        data = {name: np.load(folder / f"{name}.npy", mmap_mode="r", allow_pickle=False) for name in _ARRAYS}
        return LanguageIdentifier(
            data["ptc"], np.asarray(data["pc"]), data["classes"].tolist(), _to_array(data["nextmove"]),
            data["out_feat"].tolist(), norm_probs=True, tk_row=_to_array(data["nextmove_row"]))
    except (OSError, KeyError, ImportError, ValueError):
        return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


def _unpacked(packed: Path) -> Path:
    """The model's arrays as .npy files in a folder, written once: in a scratch folder first,
    then renamed into place, so that processes racing to write it never read half of one."""
    from importlib.metadata import version

    import numpy as np

    root = Path(os.environ.get("LFM2_SEARCH_CACHE", Path.home() / ".cache" / "lfm2-search")) / "py3langid"
    target = root / f"model-{version('py3langid')}-{packed.stat().st_size}"
    if target.is_dir():
        return target
    root.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(dir=root, prefix=".part-"))
    try:
        with tempfile.TemporaryFile(dir=scratch) as npz:
            with lzma.open(packed) as src:  # streamed: np.load would seek back and forth in it
                shutil.copyfileobj(src, npz, length=1 << 20)
            npz.seek(0)
            with np.load(npz, allow_pickle=False) as data:
                for name in _ARRAYS:
                    np.save(scratch / f"{name}.npy", data[name])
        os.replace(scratch, target)
    except OSError:
        if not target.is_dir():  # not another process's win: a full disk, a read-only home
            raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return target


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
