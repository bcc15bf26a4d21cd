"""The dev scores a training run, a weight average or a size study reads off a model.

NDCG@10 on dev tasks only (never the evaluation tasks): NanoQA dev in the run's languages and the
NanoNTREX dev grid across them; by MaxSim, and by the dense head alone when the model has one.
One function, so that a training curve, eval/average_models.py and eval/student_sizes.py
report numbers that compare.
"""

from __future__ import annotations

from pathlib import Path

from .builders import dev_tasks
from .harness import evaluate_cross_lingual, evaluate_task


def load_dev_tasks(shared_data: Path, languages: list[str]) -> tuple[list, list]:
    """(monolingual, parallel) dev tasks: NanoQA dev in each of `languages` that has one, and
    NanoNTREX dev in all of them."""
    tasks = dev_tasks(Path(shared_data), languages, languages, qa_corpus_size=300, scifact_corpus_size=None)
    return [t for t in tasks if not t.info.parallel], [t for t in tasks if t.info.parallel]


def system_dev_scores(system, monolingual: list, parallel: list) -> dict[str, float]:
    """NDCG@10 of any retriever (evaluation/retrievers.py): qa_<lang> per monolingual task, and
    ntrex_cross, the mean over the cross-lingual grid's pairs."""
    scores = {f"qa_{t.info.language}": evaluate_task(system, t).ndcg_at_10 for t in monolingual}
    cross = list(evaluate_cross_lingual(system, parallel)) if len(parallel) > 1 else []
    if cross:
        scores["ntrex_cross"] = sum(r.ndcg_at_10 for r in cross) / len(cross)
    return scores


def dev_scores(encoder, tasks: tuple[list, list]) -> dict[str, float]:
    """system_dev_scores of a ColBERT encoder by MaxSim, and of its dense head alone (keys
    dense_*) when it has one."""
    from .retrievers import ColBERTRetriever, DenseHeadRetriever

    scores = system_dev_scores(ColBERTRetriever(encoder, "dev"), *tasks)
    if encoder.dense_head is not None:
        dense = system_dev_scores(DenseHeadRetriever(encoder, "dev-dense"), *tasks)
        scores.update({f"dense_{k}": v for k, v in dense.items()})
    return scores
