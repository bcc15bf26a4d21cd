"""Lexical analysis per language (issue 39), measured on real translated documentation: the
Debian Administrator's Handbook in eight languages (eval/real_documents.py builds its index:
every page, `lfm2-search index` defaults), BM25 re-analysed in place for each setting
(`optimize --lexical-only`: the token vectors stay, so semantic search is the same in every row).

Tasks, k = 10, one hit per page:
  - dev questions: 42 natural questions in en, de, fr, es, ru, ja, zh written for this
    benchmark (eval/data/debian-handbook-questions-dev.tsv); the relevant page is the page that
    answers it, in the question's language. Settings and the fusion are chosen on these only.
  - eval questions: 63 more, on pages none of the dev questions asks about
    (eval/data/debian-handbook-questions-eval.tsv); never tuned on.
  - English questions: the 30 of eval/real_documents.py (English page relevant).
  - titles: each page's title in each of the 8 languages -> that page (eval/real_documents.py).
Metrics: MRR@10 and hit@3 (the answer in the top 3, what a RAG prompt reads).

    python -m eval.lexical_analysis                       # dev: every setting; the fusion sweep
    python -m eval.lexical_analysis --split eval          # plain vs the default, evaluation questions
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import statistics
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from eval.real_documents import DATA, LANGUAGES, fetch, pages, questions, title_of

ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = ROOT / "eval" / "data"
OUT = ROOT / "eval" / "out" / "lexical-analysis"
FOLDERS = {"en": "en-US", "de": "de-DE", "fr": "fr-FR", "es": "es-ES", "ru": "ru-RU", "ja": "ja-JP", "zh": "zh-CN"}
console = Console(width=None if sys.stdout.isatty() else 170)


def settings():
    """(label, Analysis) rows of the dev table; the fusion sweep runs on the last (the default)."""
    from lfm2_retrieval.index.analysis import Analysis

    plain = Analysis.PLAIN
    words = dataclasses.replace(plain, stop_words=True, stemming=True)
    return [("plain (before)", plain), ("stop words + stems", words),
            ("+ statistics per language", dataclasses.replace(words, language_statistics=True)),
            ("+ title x1", dataclasses.replace(words, title_weight=1)),
            ("+ title x2", dataclasses.replace(words, title_weight=2)),
            ("+ title x3 (default)", dataclasses.replace(words, title_weight=3))]


def read_questions(split: str) -> list[tuple[str, str, str]]:
    """(language, question, page) of a split."""
    path = DATA_DIR / f"debian-handbook-questions-{split}.tsv"
    rows = [line.split("\t") for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip() and not line.startswith("#")]
    return [(lang.strip(), q.strip(), page.strip()) for lang, q, page in rows]


def tasks(html: Path, split: str, limit: int | None = None) -> dict[str, list[tuple[str, str]]]:
    """task -> (query, relevant document id) pairs."""
    from lfm2_retrieval.ingest import source_name

    out = {f"{split} questions": [(q, source_name(html / FOLDERS[lang] / page)) for lang, q, page in
                                  read_questions(split)]}
    english = pages(html, "en-US", limit)
    out["English questions"] = [(q, source_name(english[p])) for q, p in questions() if p in english]
    titles = []
    for lang in LANGUAGES:
        titles += [(title_of(p), source_name(p)) for name, p in pages(html, lang, limit).items() if name in english]
    out["titles"] = [(t, d) for t, d in titles if t]
    return out


def measure(engine, queries: list[tuple[str, str]], **search) -> dict[str, float]:
    hits = engine.search([q for q, _ in queries], k=10, per_document=True, **search)
    ranks = []
    for (_, relevant), ranked in zip(queries, hits):
        docs = [h.metadata.get("doc_id") for h in ranked]
        ranks.append(docs.index(relevant) + 1 if relevant in docs else None)
    return {"mrr": sum(1 / r for r in ranks if r) / len(ranks), "hit3": sum(1 for r in ranks if r and r <= 3) /
            len(ranks), "queries": len(ranks)}


def working_index(base: Path, out: Path) -> Path:
    """A copy of the handbook index to re-analyse (the base stays as eval/real_documents.py made it)."""
    work = out / "index"
    if not (work / "manifest.json").exists():
        shutil.rmtree(work, ignore_errors=True)
        shutil.copytree(base, work)
    return work


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--split", choices=["dev", "eval"], default="dev")
    p.add_argument("--base", type=Path, default=ROOT / "eval" / "out" / "real-documents" / "default" / "index",
                   help="the handbook index (python -m eval.real_documents builds it; else built here, --model)")
    p.add_argument("--model", default=None, help="the model to build a missing --base with (default: the embedded one)")
    p.add_argument("--languages", nargs="*", default=LANGUAGES, help="handbook languages of a --base built here")
    p.add_argument("--data", type=Path, default=DATA)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--alphas", type=float, nargs="*", default=[0.2, 0.35, 0.5, 0.65])
    p.add_argument("--rows", type=int, nargs="*", help="dev: only these rows of the settings (0 = plain)")
    p.add_argument("--max-queries", type=int, default=None, help="at most this many queries a task (a quick look)")
    p.add_argument("--pages", type=int, default=None,
                   help="a --base built here holds only the first N pages of each language (a quick look)")
    p.add_argument("--out", type=Path, default=OUT)
    args = p.parse_args(argv)
    import torch

    from lfm2_retrieval.engine import SearchEngine
    from lfm2_retrieval.engine.fusion import DEFAULT_ALPHA
    from lfm2_retrieval.index.analysis import Analysis

    torch.set_num_threads(args.threads)
    html = fetch(args.data)
    if not (args.base / "manifest.json").exists():
        from eval.real_documents import build_index
        from lfm2_retrieval.model.locations import default_model

        console.print(f"building the handbook index at {args.base} ({', '.join(args.languages)})")
        build_index(args.model or str(default_model()), html, args.languages, args.base,
                    limit=args.pages)["engine"].index.close()
    args.out.mkdir(parents=True, exist_ok=True)
    engine = SearchEngine.open(working_index(args.base, args.out))
    chosen = [row for n, row in enumerate(settings()) if args.split == "dev" and (args.rows is None or n in args.rows)
              or row[0] == "plain (before)"]
    if args.split == "eval":
        chosen.append(("default (after)", Analysis()))
    by_task = {task: queries[:args.max_queries] for task, queries in tasks(html, args.split, args.pages).items()
               if queries}  # with --pages, a task may keep no query
    rows: dict[tuple[str, str], dict[str, dict]] = {}
    semantic = {task: measure(engine, queries, mode="semantic") for task, queries in by_task.items()}
    rows[("semantic (any setting)", "semantic")] = semantic
    timings = {}
    for label, analysis in chosen:
        start = time.perf_counter()
        engine.reanalyze(analysis)
        timings[label] = time.perf_counter() - start
        console.print(f"{label}: {analysis.describe()} (re-analysed in {timings[label]:.0f} s)")
        for mode in ("lexical", "hybrid"):
            rows[(label, mode)] = {task: measure(engine, queries, mode=mode) for task, queries in by_task.items()}
        if args.split == "dev" and label == chosen[-1][0]:  # the fusion, re-tuned for the last setting
            for alpha in args.alphas:
                if alpha != DEFAULT_ALPHA:
                    rows[(label, f"hybrid alpha={alpha:g}")] = {
                        task: measure(engine, queries, mode="hybrid", alpha=alpha) for task, queries in by_task.items()}
            rows[(label, "hybrid RRF")] = {task: measure(engine, queries, mode="hybrid", fusion="rrf")
                                           for task, queries in by_task.items()}
    engine.reanalyze(Analysis())  # the working copy ends with today's default
    report(rows, list(by_task), args)


def report(rows: dict, task_names: list[str], args) -> None:
    title = (f"Debian handbook, {args.split} split: MRR@10 / hit@3 per task (one hit per page); "
             f"hybrid = default fusion unless named")
    table = Table(title=title, title_justify="left")
    for column in ("setting", "mode", *task_names, "mean MRR"):
        table.add_column(column, justify="left" if column in ("setting", "mode") else "right")
    lines = ["| setting | mode | " + " | ".join(task_names) + " | mean MRR |",
             "|---|---|" + "---:|" * (len(task_names) + 1)]
    for (label, mode), by in rows.items():
        cells = [f"{by[t]['mrr']:.3f} / {by[t]['hit3']:.3f}" for t in task_names]
        mean = f"{statistics.mean(by[t]['mrr'] for t in task_names):.3f}"
        table.add_row(label, mode, *cells, mean)
        lines.append(f"| {label} | {mode} | " + " | ".join(cells) + f" | {mean} |")
    console.print(table)
    (args.out / f"results-{args.split}.md").write_text(title + "\n\n" + "\n".join(lines) + "\n")
    (args.out / f"results-{args.split}.json").write_text(json.dumps(
        [{"setting": label, "mode": mode, "task": t, **v} for (label, mode), by in rows.items() for t, v in by.items()],
        indent=1))


if __name__ == "__main__":
    main()
