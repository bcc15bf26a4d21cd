"""Average the weights of two model folders of one lineage ("model soups") and score each
average on the dev tasks (never the evaluation tasks), beside the two models themselves.

    .venv/bin/python -m eval.average_models runs/default-model-e5-vocab-kd/model \\
        runs/default-model-e5-vocab-kd-1200/model --weights 0 0.25 0.5 1

Weight w is the second model's share. Averages land in runs/average-<w>/ (a PyLate folder each).
BM25 is scored on the same tasks, first, as the baseline.
Dev tasks as training scores them: NanoQA dev in en, ja, ko (and ar where there is one) and
the NanoNTREX dev grid across those languages; a model with a dense head is scored with it
alone too (dense_*). A file only the first model has (a dense head) is kept as it is.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from lfm2_retrieval.training.averaging import average_models

ROOT = Path(__file__).resolve().parents[1]


def scores_of(folder: Path | None, tasks: tuple[list, list]) -> dict[str, float]:
    """Dev NDCG@10 of a model folder (None: BM25) as training scores it (MaxSim, and its dense
    head alone as dense_*), and the mean of the MaxSim columns."""
    from lfm2_retrieval import ColBERTEncoder
    from lfm2_retrieval.evaluation.retrievers import BM25Retriever
    from lfm2_retrieval.evaluation.dev import dev_scores, system_dev_scores

    scores = system_dev_scores(BM25Retriever(), *tasks) if folder is None else \
        dev_scores(ColBERTEncoder.from_pretrained(str(folder)), tasks)
    own = [v for k, v in scores.items() if not k.startswith("dense_")]
    return {**scores, "mean": sum(own) / len(own)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("first", type=Path)
    parser.add_argument("second", type=Path)
    parser.add_argument("--weights", type=float, nargs="+", default=[0.0, 0.25, 0.5, 0.75, 1.0])
    parser.add_argument("--shared-data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--languages", nargs="+", default=["en", "ja", "ko", "ar"])
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from lfm2_retrieval.evaluation.dev import load_dev_tasks

    tasks = load_dev_tasks(args.shared_data, args.languages)
    rows = [("BM25", scores_of(None, tasks))]
    for w in args.weights:
        folder = args.first if w == 0 else args.second if w == 1 else average_models(
            [args.first, args.second], ROOT / "runs" / f"average-{w:g}", [1 - w, w])
        rows.append((f"{w:g}", scores_of(folder, tasks)))
        print(f"w={w:g}: " + "  ".join(f"{k} {v:.4f}" for k, v in rows[-1][1].items()), flush=True)
    keys = list(dict.fromkeys(k for _, scores in rows for k in scores))
    print("\n| w (second model's share) | " + " | ".join(keys) + " |")
    print("|---|" + "---:|" * len(keys))
    for w, scores in rows:
        print(f"| {w} | " + " | ".join(f"{scores[k]:.3f}" if k in scores else "-" for k in keys) + " |")


if __name__ == "__main__":
    main()
