"""Average the weights of two model folders of one lineage ("model soups") and score each
average on the dev tasks (never the evaluation tasks), beside the two models themselves.

    .venv/bin/python -m eval.average_models runs/default-model-e5-vocab-kd/model \\
        runs/default-model-e5-vocab-kd-1200/model --weights 0 0.25 0.5 1

Weight w is the second model's share. Averages land in runs/average-<w>/ (a PyLate folder each).
BM25 is scored on the same tasks, first, as the baseline.
Dev tasks as training scores them: NanoQA dev in en, ja, ko (and ar where there is one) and
the NanoNTREX dev grid across those languages.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

ROOT = Path(__file__).resolve().parents[1]


def average(a: Path, b: Path, out: Path, w: float) -> Path:
    """(1 - w) * a + w * b for every tensor of every safetensors file; the rest copied from a."""
    shutil.rmtree(out, ignore_errors=True)
    shutil.copytree(a, out)
    for f in a.rglob("*.safetensors"):
        rel = f.relative_to(a)
        ta, tb = load_file(f), load_file(b / rel)
        if ta.keys() != tb.keys() or any(ta[k].shape != tb[k].shape for k in ta):
            raise SystemExit(f"{rel}: the two models do not have the same tensors (not one lineage)")
        save_file({k: ((1 - w) * ta[k].float() + w * tb[k].float()).to(ta[k].dtype) for k in ta}, out / rel,
                  metadata={"format": "pt"})
    return out


def dev_scores(folder: Path | None, shared: Path, languages: list[str]) -> dict[str, float]:
    """NDCG@10 of a model folder (None: BM25) on each dev task, the NTREX grid's mean, and the mean."""
    from lfm2_retrieval import ColBERTEncoder
    from lfm2_retrieval.evaluation.builders import dev_tasks
    from lfm2_retrieval.evaluation.harness import evaluate_cross_lingual, evaluate_task
    from lfm2_retrieval.evaluation.retrievers import BM25Retriever, ColBERTRetriever

    tasks = dev_tasks(shared, languages, languages, qa_corpus_size=300, scifact_corpus_size=None)
    system = BM25Retriever() if folder is None else ColBERTRetriever(ColBERTEncoder.from_pretrained(str(folder)),
                                                                     folder.name)
    scores = {f"qa_{t.info.language}": evaluate_task(system, t).ndcg_at_10 for t in tasks if not t.info.parallel}
    cross = list(evaluate_cross_lingual(system, [t for t in tasks if t.info.parallel]))
    if cross:
        scores["ntrex_cross"] = sum(r.ndcg_at_10 for r in cross) / len(cross)
    scores["mean"] = sum(scores.values()) / len(scores)
    return scores


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
    rows = [("BM25", dev_scores(None, args.shared_data, args.languages))]
    for w in args.weights:
        folder = args.first if w == 0 else args.second if w == 1 else average(
            args.first, args.second, ROOT / "runs" / f"average-{w:g}", w)
        rows.append((f"{w:g}", dev_scores(folder, args.shared_data, args.languages)))
        print(f"w={w:g}: " + "  ".join(f"{k} {v:.4f}" for k, v in rows[-1][1].items()), flush=True)
    keys = list(rows[0][1])
    print("\n| w (second model's share) | " + " | ".join(keys) + " |")
    print("|---|" + "---:|" * len(keys))
    for w, scores in rows:
        print(f"| {w} | " + " | ".join(f"{scores[k]:.3f}" for k in keys) + " |")


if __name__ == "__main__":
    main()
