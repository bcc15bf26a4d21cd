"""A real multilingual collection of about 100k chunks, indexed once and kept for benchmarks.

    .venv/bin/python -m eval.collections.real_collection                  # builds eval/out/real-collection (~20 min)
    .venv/bin/python -m eval.bench_api --index eval/out/real-collection --seconds 20

Records (JSON Lines, one file per source, so `lfm2-search index` chunks them as it chunks any
user's records): every distinct QA paragraph of every language in ../shared/data/qa, SciFact's
abstracts, and NTREX-128's 123 news documents in each of its 128 languages (the sentences of a
document joined). The index is built by `lfm2-search index` with the embedded model and kept in
eval/out (not committed): later runs find it built and print its counts. Evaluation only: the
KorQuAD licence allows no training, and nothing here trains.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT.parent / "shared" / "data"
OUT = ROOT / "eval" / "out" / "real-collection"


def qa_paragraphs() -> list[dict]:
    rows, seen = [], set()
    for path in sorted((DATA / "qa").glob("*/*.json")):
        lang = path.parent.name
        for article in json.loads(path.read_text(encoding="utf-8"))["data"]:
            for paragraph in article.get("paragraphs", []):
                text = paragraph["context"].strip()
                if text and text not in seen:
                    seen.add(text)
                    rows.append({"id": f"qa-{lang}-{len(rows)}", "text": text, "title": article.get("title", ""),
                                 "lang": lang, "source_set": path.stem})
    return rows


def scifact() -> list[dict]:
    rows = [json.loads(line) for line in open(DATA / "beir" / "scifact" / "corpus.jsonl", encoding="utf-8")]
    return [{"id": f"scifact-{r['_id']}", "text": r["text"], "title": r.get("title", ""), "lang": "en",
             "source_set": "scifact"} for r in rows]


def ntrex_documents() -> list[dict]:
    folder = DATA / "parallel" / "ntrex128"
    doc_ids = (folder / "DOCUMENT_IDS.tsv").read_text(encoding="utf-8").splitlines()
    rows = []
    for path in sorted(folder.glob("newstest2019-*.txt")):
        code = path.stem.split(".", 1)[1]
        lines = path.read_text(encoding="utf-8").splitlines()
        documents: dict[str, list[str]] = {}
        for doc, line in zip(doc_ids, lines):
            documents.setdefault(doc, []).append(line.strip())
        rows += [{"id": f"ntrex-{code}-{doc}", "text": " ".join(parts), "lang": code, "source_set": "ntrex128"}
                 for doc, parts in documents.items()]
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--per-source", type=int, default=None, metavar="N",
                        help="only the first N records of each source (a quick look; default: all)")
    args = parser.parse_args()
    records = args.out / "records"
    if not records.exists():
        records.mkdir(parents=True)
        for name, rows in (("qa", qa_paragraphs()), ("scifact", scifact()), ("ntrex128", ntrex_documents())):
            rows = rows[:args.per_source] if args.per_source else rows
            with open(records / f"{name}.jsonl", "w", encoding="utf-8") as f:
                for row in rows:
                    f.write(json.dumps(row, ensure_ascii=False) + "\n")
            print(f"{name}: {len(rows)} records", file=sys.stderr)
    # lfm2-search index itself: incremental, so a finished index costs a few seconds to confirm.
    subprocess.run([sys.executable, "-m", "lfm2_retrieval.cli", "index", str(records), "--index",
                    str(args.out / "index")], check=True)
    subprocess.run([sys.executable, "-m", "lfm2_retrieval.cli", "info", "--index", str(args.out / "index")], check=True)


if __name__ == "__main__":
    main()
