"""Choose the hybrid-search fusion on dev tasks: reciprocal rank fusion against score
interpolation at every alpha, with semantic and lexical alone for reference.

The dev tasks (lfm2_retrieval/evaluation/builders.py, build_dev_suite) share no query and no
document with the evaluation tasks of eval/nanobeir.py, and come from files the training recipe
never reads, so the choice does not look at evaluation data:

    python -m eval.tune_fusion                       # the embedded model, monolingual dev tasks
    python -m eval.tune_fusion --cross-lingual       # also the NanoNTREX dev grid
    python -m eval.tune_fusion --model runs/x/model --alphas 0.2 0.3 0.4

Each side retrieves `--depth` documents (the engine's depth for k=10), the fusion keeps the top
10, and NDCG@10 is averaged per task. The setting with the best mean over the task columns
(a cross-lingual grid counts as one column) is printed as the choice; results.json keeps
everything.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import defaultdict
from pathlib import Path

from rich.console import Console
from rich.table import Table
from tqdm import tqdm

from lfm2_retrieval.evaluation.builders import build_atomically, build_dev_suite
from lfm2_retrieval.evaluation.harness import score
from lfm2_retrieval.evaluation.retrievers import BM25Retriever, ColBERTRetriever
from lfm2_retrieval.evaluation.tasks import discover, load_folder
from lfm2_retrieval.engine.fusion import FUSION_DEPTH, fuse
from lfm2_retrieval.index.analysis import Analysis

ROOT = Path(__file__).resolve().parents[1]

SHARED_DATA = ROOT.parent / "shared" / "data"
DEFAULT_DATA = ROOT / "eval" / "out" / "nano-dev"
console = Console(width=None if sys.stdout.isatty() else 160)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=None, help="PyLate ColBERT folder with an LFM2 backbone (default: the "
                   "embedded model)")
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder of dev task folders (built from "
                   "../shared/data when missing)")
    p.add_argument("--shared-data", type=Path, default=SHARED_DATA)
    p.add_argument("--build", action="store_true", help="(re)build the dev tasks")
    p.add_argument("--cross-lingual", action="store_true", help="also the parallel dev tasks, across languages")
    p.add_argument("--alphas", type=float, nargs="*", default=[round(a * 0.05, 2) for a in range(21)],
                   help="interpolation weights of the semantic side to try (default 0, 0.05, ..., 1)")
    p.add_argument("--depth", type=int, default=FUSION_DEPTH, help="documents taken from each side")
    p.add_argument("--k", type=int, default=10, help="fused list length scored (NDCG@10 needs 10)")
    p.add_argument("--bm25-plain", action="store_true", help="BM25 with plain words (no stop words or stems: the "
                   "engine before 0.9) instead of the default analysis per language")
    p.add_argument("--out", type=Path, default=ROOT / "eval" / "out" / "fusion-dev")
    return p.parse_args(argv)


def load_dev_tasks(args):
    if args.build or not discover(args.data):
        if not args.shared_data.is_dir():
            sys.exit(f"error: no dev tasks in {args.data} and no shared data at {args.shared_data}")
        console.print(f"building dev tasks from {args.shared_data} into {args.data}")
        build_atomically(build_dev_suite, args.shared_data, args.data)
    return [load_folder(f) for f in discover(args.data)]


def collect_runs(args, tasks) -> list[tuple[str, dict, dict, dict]]:
    """(column, qrels, semantic run, lexical run) for every monolingual task and every
    off-diagonal pair of each parallel family (its column is the family)."""
    from lfm2_retrieval import ColBERTEncoder
    from lfm2_retrieval.model.locations import default_model

    encoder = ColBERTEncoder.from_pretrained(args.model or default_model())
    semantic = ColBERTRetriever(encoder, "model")
    lexical = BM25Retriever(Analysis.PLAIN) if args.bm25_plain else BM25Retriever()
    mono = [t for t in tasks if not t.info.parallel]
    families = defaultdict(list)
    for t in tasks:
        if t.info.parallel and args.cross_lingual:
            families[t.info.name].append(t)
    jobs = len(mono) + sum(len(g) for g in families.values())
    runs = []
    with tqdm(total=jobs, desc="Retrieving", unit="corpus") as bar:
        for task in mono:
            s, lx = semantic.index(task.corpus), lexical.index(task.corpus)
            runs.append((task.key, task.qrels, semantic.search(s, task.queries, args.depth),
                         lexical.search(lx, task.queries, args.depth)))
            bar.update()
        for name, group in families.items():
            for docs in group:
                s, lx = semantic.index(docs.corpus), lexical.index(docs.corpus)
                for queries in group:
                    if queries is not docs:
                        runs.append((f"{name} grid", docs.qrels, semantic.search(s, queries.queries, args.depth),
                                     lexical.search(lx, queries.queries, args.depth)))
                bar.update()
    return runs


def settings(alphas) -> list[tuple[str, str | None, float | None]]:
    """(label, fusion, alpha); fusion None means one side alone."""
    out = [("semantic", None, 1.0), ("lexical", None, 0.0), ("rrf", "rrf", None)]
    return out + [(f"alpha={a:g}", "interpolation", a) for a in alphas]


def ndcg_table(runs, alphas, k: int) -> tuple[list[str], dict[str, dict[str, float]]]:
    columns = list(dict.fromkeys(col for col, *_ in runs))
    table: dict[str, dict[str, float]] = {}
    for label, fusion, alpha in settings(alphas):
        per_column = defaultdict(list)
        for col, qrels, sem, lex in runs:
            fused = {}
            for q in qrels:
                s, lx = list(sem.get(q, {}).items()), list(lex.get(q, {}).items())
                ranking = (s if alpha == 1.0 else lx) if fusion is None else fuse(s, lx, fusion=fusion, alpha=alpha)
                fused[q] = dict(ranking[:k])
            per_column[col].append(score(qrels, fused)["ndcg@10"])
        row = {col: sum(v) / len(v) for col, v in per_column.items()}
        row["mean"] = sum(row[c] for c in columns) / len(columns)
        table[label] = row
    return columns, table


def main(argv=None) -> None:
    args = parse_args(argv)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    started = time.perf_counter()
    tasks = load_dev_tasks(args)
    runs = collect_runs(args, tasks)
    columns, table = ndcg_table(runs, args.alphas, args.k)
    fused = {label: row for label, row in table.items() if label not in ("semantic", "lexical")}
    best = max(fused, key=lambda label: (round(fused[label]["mean"], 4), label == "rrf"))
    out = Table(title=f"Dev NDCG@10 by fusion (depth {args.depth} per side, top {args.k} fused; "
                      f"{'plain' if args.bm25_plain else 'default'} BM25 analysis)",
                title_justify="left")
    out.add_column("fusion")
    for c in [*columns, "mean"]:
        out.add_column(c, justify="right")
    for label, row in table.items():
        out.add_row(label, *[f"{row[c]:.3f}" for c in [*columns, "mean"]], style="bold" if label == best else None)
    console.print(out)
    console.print(f"best on these dev tasks: [bold]{best}[/bold] (mean NDCG@10 {table[best]['mean']:.3f}; "
                  f"semantic {table['semantic']['mean']:.3f}, lexical {table['lexical']['mean']:.3f})")
    args.out.mkdir(parents=True, exist_ok=True)
    record = {"model": args.model or "embedded default", "data": str(args.data), "depth": args.depth, "k": args.k,
              "bm25": "plain" if args.bm25_plain else "default",
              "columns": columns, "ndcg_at_10": table, "best": best}
    (args.out / "results.json").write_text(json.dumps(record, indent=2))
    console.print(f"wrote {args.out}/results.json in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
