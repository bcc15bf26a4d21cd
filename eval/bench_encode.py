"""Encoding throughput: lfm2-search's ColBERTEncoder against pylate's `ColBERT.encode`.

Same model folder, same documents (BEIR SciFact from ../shared/data, or synthetic text when it is
absent), fp32 and bf16, a tiny model and an LFM2-350M-shaped one (random weights, made by
pylate). Each system runs `--repeats` times, interleaved, and the table quotes medians plus the
max abs difference between the two systems' vectors.

    .venv/bin/python -m eval.bench_encode                 # full table (~10 minutes on 2 cores)
    .venv/bin/python -m eval.bench_encode --quick         # tiny model only
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from lfm2_retrieval import ColBERTEncoder
from eval.random_models import LFM2_350M_SHAPE, TINY_SHAPE, build_random_colbert

SCIFACT = Path(__file__).resolve().parents[2] / "shared" / "data" / "beir" / "scifact" / "corpus.jsonl"


def load_documents(limit: int) -> tuple[list[str], str]:
    if SCIFACT.exists():
        docs = []
        with open(SCIFACT, encoding="utf-8") as f:
            for line in f:
                row = json.loads(line)
                docs.append(f"{row.get('title', '')}. {row['text']}")
        return docs, "SciFact"
    rng = np.random.default_rng(0)
    words = "retrieval late interaction token vector index search query document model".split()
    return [" ".join(rng.choice(words, size=rng.integers(20, 250))) for _ in range(limit)], "synthetic"


def timed(fn) -> tuple[float, object]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def bench_one(folder: Path, docs: list[str], dtype: str, compute: str, repeats: int, batch_size: int) -> dict:
    from pylate import models

    torch_dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[dtype]
    reference = models.ColBERT(str(folder), device="cpu", model_kwargs={"dtype": torch_dtype})
    ours = ColBERTEncoder.from_pretrained(folder, dtype=torch_dtype, compute_dtype=compute)
    n_tokens = sum(ours.count_document_tokens(docs))
    # Warm-up (allocator, thread pools) on a few documents, not timed.
    reference.encode(docs[:4], is_query=False, batch_size=batch_size)
    ours.encode_documents(docs[:4], batch_size=batch_size)
    times: dict[str, list[float]] = {"pylate": [], "ours": []}
    runs = {"pylate": lambda: reference.encode(docs, is_query=False, batch_size=batch_size),
            "ours": lambda: ours.encode_documents(docs, batch_size=batch_size)}
    outputs = {}
    for repeat in range(repeats):
        # Alternate who goes first, so neither always runs on a warmer machine.
        for name in (("pylate", "ours") if repeat % 2 == 0 else ("ours", "pylate")):
            t, outputs[name] = timed(runs[name])
            times[name].append(t)
    expected, got = outputs["pylate"], outputs["ours"]
    diff = max(float(np.abs(np.asarray(e, dtype=np.float32) - g).max()) for e, g in zip(expected, got))
    med = {k: statistics.median(v) for k, v in times.items()}
    min_cos = min(float((np.asarray(e, dtype=np.float32) * g).sum(axis=1).min()) for e, g in zip(expected, got))
    return {"docs": len(docs), "tokens": n_tokens, "pylate_s": med["pylate"], "ours_s": med["ours"],
            "max_abs_diff": diff, "min_cos": min_cos, "compute": str(ours.backbone.compute_dtype).split(".")[-1]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny model only")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tiny-docs", type=int, default=1000)
    parser.add_argument("--large-docs", type=int, default=16)
    parser.add_argument("--large-repeats", type=int, default=2, help="repeats for the 350M-shaped model")
    parser.add_argument("--batch-size", type=int, default=32, help="same for both systems (pylate's default)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    all_docs, source = load_documents(max(args.tiny_docs, args.large_docs))
    cases = [("tiny", TINY_SHAPE, args.tiny_docs, args.repeats)]
    if not args.quick:
        cases.append(("LFM2-350M-shaped", LFM2_350M_SHAPE, args.large_docs, args.large_repeats))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, shape, n_docs, repeats in cases:
            docs = all_docs[:n_docs]
            folder = build_random_colbert(Path(tmp) / name, shape=shape, embedding_dim=128,
                                          texts=all_docs[:2000], vocab_size=8000)
            # bf16 twice: native bf16 math (like pylate), and bf16 weights with "auto" math.
            for dtype, compute in (("fp32", "float32"), ("bf16", "bfloat16"), ("bf16", "auto")):
                r = bench_one(folder, docs, dtype, compute, repeats, args.batch_size)
                rows.append((name, dtype, r))
                print(f"done: {name} {dtype} {compute}", file=sys.stderr)

    print(f"\nDocument encoding, {source}, batch size {args.batch_size}, {args.threads} threads, "
          f"medians (torch {torch.__version__}, CPU {torch.backends.cpu.get_cpu_capability()})\n")
    print("| model | weights | our math | docs | tokens | pylate docs/s | ours docs/s | pylate tok/s | ours tok/s "
          "| speed-up | max abs diff | min cos |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, dtype, r in rows:
        print(f"| {name} | {dtype} | {r['compute']} | {r['docs']} | {r['tokens']} | {r['docs'] / r['pylate_s']:.1f} | "
              f"{r['docs'] / r['ours_s']:.1f} | {r['tokens'] / r['pylate_s']:.0f} | {r['tokens'] / r['ours_s']:.0f} | "
              f"{r['pylate_s'] / r['ours_s']:.2f}x | {r['max_abs_diff']:.1e} | {r['min_cos']:.5f} |")


if __name__ == "__main__":
    main()
