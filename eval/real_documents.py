"""Real documents: the Debian Administrator's Handbook (HTML, the same pages in many languages),
indexed as a user would (`lfm2-search index`, default settings) and searched by page titles.

The handbook comes from Debian's archive (`apt-get download debian-handbook`, about 35 MB; its
pages are under CC BY-SA 3.0 and GPL-2+), unpacked once into --data (default
~/.cache/lfm2-search/data/debian-handbook) and read in place. For each model:

  1. `index`: every page of the chosen languages (index.html and its table of contents left
     out) into one index; the end-to-end time, chunks and tokens per second are reported;
  2. tasks, one hit per page (`per_document`), k = 10, per mode (semantic, lexical, hybrid):
     - questions: 30 natural questions in English written for this benchmark
       (eval/data/debian-handbook-questions.tsv), against all pages; the relevant page is the
       English page that answers it;
     - monolingual: each page's title (its section number removed) in language X, against all
       pages of all languages; the relevant page is that page in X;
     - cross-lingual: the same title in X, against the English pages only
       (`{"source": {"$prefix": ".../en-US/"}}`); the relevant page is the English one.
  Metrics: MRR@10 and hit@10, averaged over the titles of a language, then over languages.

    python -m eval.real_documents --model lfm2_retrieval/models/default --model runs/default-model-e5/model
    python -m eval.real_documents --dense e5     # also each model with a dense slot: modes dense and
                                                 # three-signal hybrid (issue 35)

Some translations are partial (a Japanese page may hold English paragraphs): that is the data a
user has, and chunk `lang` metadata (language.py) marks it. The questions are in English only.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from html import unescape
from pathlib import Path

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]

DATA = Path.home() / ".cache" / "lfm2-search" / "data" / "debian-handbook"
HTML = Path("usr/share/doc/debian-handbook/html")
LANGUAGES = ["en-US", "de-DE", "fr-FR", "es-ES", "ja-JP", "zh-CN", "ru-RU", "ko-KR"]
MODES = ("semantic", "lexical", "hybrid")
console = Console(width=None if sys.stdout.isatty() else 170)


def fetch(data: Path) -> Path:
    """The handbook's HTML folder, downloaded and unpacked on first use."""
    html = data / HTML
    if html.is_dir():
        return html
    if not shutil.which("apt-get") or not shutil.which("dpkg-deb"):
        raise SystemExit("the handbook comes from Debian's archive: this needs apt-get and dpkg-deb")
    with tempfile.TemporaryDirectory() as tmp:
        console.print("downloading debian-handbook (apt-get download, about 35 MB)")
        subprocess.run(["apt-get", "download", "debian-handbook"], cwd=tmp, check=True, capture_output=True)
        (deb,) = Path(tmp).glob("debian-handbook_*.deb")
        unpacked = data.with_name(data.name + ".tmp")
        shutil.rmtree(unpacked, ignore_errors=True)
        unpacked.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["dpkg-deb", "-x", str(deb), str(unpacked)], check=True)
        (unpacked / "PACKAGE").write_text(deb.name + "\n")
        shutil.rmtree(data, ignore_errors=True)
        unpacked.rename(data)
    return html


def pages(html: Path, language: str, limit: int | None = None) -> dict[str, Path]:
    """Page file name -> path, for the content pages of one language; with a limit, only those
    among the first `limit` English pages (by name), so every language keeps the same pages."""
    found = {p.name: p for p in sorted((html / language).glob("*.html")) if p.name != "index.html"}
    if limit is None:
        return found
    kept = set(sorted(pages(html, "en-US"))[:limit])
    return {name: p for name, p in found.items() if name in kept}


def title_of(path: Path) -> str:
    """The page's <title>, its section number ("6.2.", "Chapter 6.") removed."""
    raw = path.read_text(encoding="utf-8", errors="replace")
    m = re.search(r"<title[^>]*>(.*?)</title>", raw, re.S)
    title = " ".join(unescape(re.sub(r"<[^>]+>", "", m.group(1))).split()) if m else ""
    return re.sub(r"^(\S{0,12}\s)?\d+(\.\d+)*\.?\s*", "", title).strip()


def build_index(model: str, html: Path, languages: list[str], out: Path, dense: str | None = None,
                limit: int | None = None) -> dict:
    from lfm2_retrieval.engine import SearchEngine
    from lfm2_retrieval.ingest import IngestOptions, Ingestor

    shutil.rmtree(out, ignore_errors=True)
    engine = SearchEngine.open(out, model=model, create=True, dense=dense)
    start = time.perf_counter()
    sources = [html / lang for lang in languages] if limit is None else \
        [page for lang in languages for page in pages(html, lang, limit).values()]
    report = Ingestor(engine, IngestOptions(exclude=["index.html"])).run(sources)
    seconds = time.perf_counter() - start
    return {"engine": engine, "seconds": seconds, "chunks": report.chunks_added, "tokens": report.tokens,
            "files": report.files_indexed}


QUESTIONS = ROOT / "eval" / "data" / "debian-handbook-questions.tsv"


def questions() -> list[tuple[str, str]]:
    """(question, page file name): natural questions in English, written for this benchmark."""
    rows = [line.split("\t") for line in QUESTIONS.read_text(encoding="utf-8").splitlines()
            if line.strip() and not line.startswith("#")]
    return [(q.strip(), page.strip()) for q, page in rows]


def _ranks(engine, queries: list[tuple[str, str]], relevant, filter_, mode) -> dict[str, float]:
    hits = engine.search([t for t, _ in queries], k=10, mode=mode, filter=filter_, per_document=True)
    ranks = []
    for (_, name), ranked in zip(queries, hits):
        docs = [h.metadata.get("doc_id") for h in ranked]
        target = relevant(name)
        ranks.append(docs.index(target) + 1 if target in docs else None)
    return {"mrr": sum(1 / r for r in ranks if r) / len(ranks), "hit": sum(1 for r in ranks if r) / len(ranks),
            "queries": len(ranks)}


def evaluate(engine, html: Path, languages: list[str], modes: tuple[str, ...] = MODES,
             limit: int | None = None) -> dict[tuple[str, str, str], dict[str, float]]:
    """(task, language, mode) -> {"mrr": ..., "hit": ...}."""
    from lfm2_retrieval.ingest import source_name

    english = pages(html, "en-US", limit)
    english_prefix = source_name(html / "en-US") + "/"
    results = {}
    if "en-US" in languages:  # natural questions: the English page answers, among all pages
        asked = [(q, page) for q, page in questions() if page in english]
        for mode in modes if asked else ():  # none with --pages: no question's page is kept
            results[("questions", "en-US", mode)] = _ranks(engine, asked, lambda n: source_name(english[n]), None, mode)
    for lang in languages:
        own = pages(html, lang, limit)
        queries = [(title_of(p), name) for name, p in own.items() if name in english]
        queries = [(t, n) for t, n in queries if t]
        tasks = [("monolingual", None, lambda n: source_name(own[n]))]  # noqa: B023 - called within this iteration
        if lang != "en-US":
            tasks.append(("cross-lingual", {"source": {"$prefix": english_prefix}}, lambda n: source_name(english[n])))
        for task, filter_, relevant in tasks:
            for mode in modes:
                results[(task, lang, mode)] = _ranks(engine, queries, relevant, filter_, mode)
    return results


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", action="append", default=[], help="model folder (repeatable; default: the embedded one)")
    p.add_argument("--languages", nargs="*", default=LANGUAGES, help="handbook language folders")
    p.add_argument("--data", type=Path, default=DATA)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--dense", default=None, help="also index each model with this dense encoder (e5, model, or a "
                   "sentence-transformers folder) and score modes dense and hybrid (three signals)")
    p.add_argument("--pages", type=int, default=None, help="only the first N pages of each language (a quick look)")
    p.add_argument("--out", type=Path, default=ROOT / "eval" / "out" / "real-documents")
    args = p.parse_args(argv)
    import torch

    from lfm2_retrieval.model.locations import default_model

    torch.set_num_threads(args.threads)
    html = fetch(args.data)
    missing = [lang for lang in args.languages if not (html / lang).is_dir()]
    if missing:
        raise SystemExit(f"no handbook pages for {missing}; there are: {sorted(p.name for p in html.iterdir())}")
    models = args.model or [str(default_model())]
    rows, speed, labels = {}, {}, []
    systems = [(m, None) for m in models] + ([(m, args.dense) for m in models] if args.dense else [])
    for model, dense in systems:
        label = Path(model).parent.name if Path(model).name == "model" else Path(model).name
        label += f" + dense {dense}" if dense else ""
        labels.append(label)
        built = build_index(model, html, args.languages, args.out / label.replace(" ", "_") / "index", dense,
                            args.pages)
        speed[label] = {k: v for k, v in built.items() if k != "engine"}
        console.print(f"{label}: indexed {built['files']} pages, {built['chunks']} chunks, {built['tokens']} tokens "
                      f"in {built['seconds']:.0f} s ({built['tokens'] / built['seconds']:.0f} tokens/s, "
                      f"{built['chunks'] / built['seconds']:.1f} chunks/s)")
        modes = (*MODES, "dense") if dense else MODES
        for (task, lang, mode), value in evaluate(built["engine"], html, args.languages, modes, args.pages).items():
            rows.setdefault((task, mode), {}).setdefault(label, {})[lang] = value

    table = Table(title=f"Debian handbook, page titles -> pages ({', '.join(args.languages)}); mean over languages "
                        "of MRR@10 / hit@10", title_justify="left")
    lines = ["| task | mode | " + " | ".join(labels) + " |", "|---|---|" + "---:|" * len(labels)]
    for column in ("task", "mode", *labels):
        table.add_column(column, justify="left" if column in ("task", "mode") else "right")
    for (task, mode), by_label in rows.items():
        cells = []
        for label in labels:
            values = list(by_label.get(label, {}).values())
            cells.append(f"{statistics.mean(v['mrr'] for v in values):.3f} / "
                         f"{statistics.mean(v['hit'] for v in values):.3f}" if values else "—")
        table.add_row(task, mode, *cells)
        lines.append(f"| {task} | {mode} | " + " | ".join(cells) + " |")
    console.print(table)
    args.out.mkdir(parents=True, exist_ok=True)
    flat = [{"task": t, "mode": m, "model": label, "language": lang, **v}
            for (t, m), by_label in rows.items() for label, by_lang in by_label.items() for lang, v in by_lang.items()]
    (args.out / "results.json").write_text(json.dumps({"rows": flat, "indexing": speed}, indent=1), encoding="utf-8")
    (args.out / "results.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    console.print(f"wrote {args.out}/results.json and results.md ({os.cpu_count()} CPUs here)")


if __name__ == "__main__":
    main()
