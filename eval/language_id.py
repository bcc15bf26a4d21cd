"""How well chunks get their `lang` (lfm2_retrieval/index/language.py, py3langid) on NTREX-128.

For every NTREX language with an ISO 639-1 code, the held-out evaluation sentences (never used for
anything else) are identified one by one (a short chunk) and three at a time (a paragraph-sized
chunk); a guess below the confidence bar counts as "no answer" (the chunk then takes its
document's language), a confident wrong code as an error. Languages the identifier does not know
are listed apart: their chunks should get no answer rather than a wrong one.

    python -m eval.language_id

Prints a table (accuracy, no answer, wrong; per script group and overall, medians over
languages) and writes OUT/results.json and OUT/results.md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from lfm2_retrieval.evaluation.builders import ntrex_split_sentences
from lfm2_retrieval.index.language import MIN_CONFIDENCE, _model, identify

ROOT = Path(__file__).resolve().parents[1]

SHARED_DATA = ROOT.parent / "shared" / "data"
# NTREX codes whose ISO 639-1 code pycountry cannot give (individual languages of a macrolanguage,
# script and region tags).
SPECIAL = {"arb": "ar", "msa": "ms", "fas": "fa", "prs": "fa", "swa": "sw", "est": "et", "lav": "lv",
           "nep": "ne", "uzb": "uz", "aze-Latn": "az", "mon": "mn", "zho-CN": "zh", "zho-TW": "zh",
           "srp-Cyrl": "sr", "srp-Latn": "sr", "sqi": "sq", "kmr": "ku", "ckb-Arab": "ku", "nob": "no",
           "nno": "nn", "yue": "zh", "tgk-Cyrl": "tg", "snd-Arab": "sd", "sna-Latn": "sn", "fil": "tl",
           "mya": "my", "orm": "om", "pus": "ps", "gsw-BE": "de", "gsw-ZH": "de"}
console = Console(width=None if sys.stdout.isatty() else 160)


def iso639_1(code: str) -> str | None:
    if code in SPECIAL:
        return SPECIAL[code]
    import pycountry

    base = code.split("-")[0]
    language = pycountry.languages.get(alpha_3=base)
    return getattr(language, "alpha_2", None) if language else None


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--shared-data", type=Path, default=SHARED_DATA)
    p.add_argument("--out", type=Path, default=ROOT / "eval" / "out" / "language-id")
    args = p.parse_args(argv)
    folder = args.shared_data / "parallel" / "ntrex128"
    evaluation, _ = ntrex_split_sentences(args.shared_data)
    known = set(_model().nb_classes)
    rows = []
    for path in sorted(folder.glob("newstest2019-*.txt")):
        code = "eng" if path.name == "newstest2019-src.eng.txt" else path.name.split(".")[1]
        if path.name.startswith("newstest2019-ref-2"):
            continue
        expected = iso639_1(code)
        lines = path.read_text(encoding="utf-8").splitlines()
        sentences = [lines[i] for i in sorted(evaluation) if i < len(lines) and lines[i].strip()]
        row = {"ntrex": code, "lang": expected, "known": expected in known}
        for name, texts in (("sentence", sentences),
                            ("3 sentences", [" ".join(sentences[i:i + 3]) for i in range(0, len(sentences), 3)])):
            guesses = [identify(t) for t in texts]
            answered = [g for g, c in guesses if c >= MIN_CONFIDENCE]
            row[name] = {"right": sum(g == expected for g in answered) / len(texts),
                         "no answer": 1 - len(answered) / len(texts),
                         "wrong": sum(g != expected for g in answered) / len(texts)}
        rows.append(row)

    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(rows, indent=1), encoding="utf-8")
    table = Table(title=f"Language identification on NTREX-128 evaluation sentences (py3langid, "
                        f"confidence >= {MIN_CONFIDENCE}; medians over languages)")
    for column in ("languages", "n", "unit", "right", "no answer", "wrong"):
        table.add_column(column, justify="left" if column in ("languages", "unit") else "right")
    lines = ["| languages | n | unit | right | no answer | wrong |", "|---|---:|---|---:|---:|---:|"]
    for group, members in (("known to the identifier", [r for r in rows if r["known"]]),
                           ("unknown to it", [r for r in rows if not r["known"]])):
        for unit in ("sentence", "3 sentences"):
            cells = [f"{statistics.median(r[unit][m] for r in members):.3f}" if members else "-"
                     for m in ("right", "no answer", "wrong")]
            table.add_row(group, str(len(members)), unit, *cells)
            lines.append(f"| {group} | {len(members)} | {unit} | " + " | ".join(cells) + " |")
    console.print(table)
    worst = sorted((r for r in rows if r["known"]), key=lambda r: r["3 sentences"]["right"])[:8]
    console.print("lowest (3 sentences, right): " + ", ".join(
        f"{r['ntrex']} {r['3 sentences']['right']:.2f}" for r in worst))
    unknown = [r["ntrex"] for r in rows if not r["known"]]
    console.print("unknown to the identifier: " + ", ".join(unknown))
    (args.out / "results.md").write_text("\n".join(lines) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
