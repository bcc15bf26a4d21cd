"""Scoring systems on tasks: monolingual tasks, and cross-lingual grids over parallel tasks.

Metrics come from ir-measures (pytrec_eval underneath), with binary relevance as NanoBEIR:
nDCG@10, R@100 and RR@10 (MRR@10), averaged over the queries of a task.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass

import ir_measures
from ir_measures import RR, R, nDCG

from .retrievers import Retriever, Run
from .tasks import RetrievalTask

MEASURES = {"ndcg@10": nDCG @ 10, "recall@100": R @ 100, "mrr@10": RR @ 10}
DEPTH = 100


@dataclass
class Result:
    system: str
    task: str
    query_language: str
    document_language: str
    ndcg_at_10: float
    recall_at_100: float
    mrr_at_10: float
    n_queries: int
    n_documents: int
    seconds: float

    def as_dict(self) -> dict:
        return asdict(self)


def score(qrels: dict[str, dict[str, int]], run: Run) -> dict[str, float]:
    """Mean metrics over every judged query; a query with no results scores 0 (ir-measures
    averages over the queries of the qrels, not of the run)."""
    present = {q: r for q, r in run.items() if r and q in qrels}
    values = ir_measures.calc_aggregate(list(MEASURES.values()), qrels, present) if present else {}
    return {name: float(values.get(m, 0.0)) for name, m in MEASURES.items()}


def _result(system: str, task_name: str, qlang: str, dlang: str, metrics: dict, n_q: int, n_d: int,
            seconds: float) -> Result:
    return Result(system, task_name, qlang, dlang, metrics["ndcg@10"], metrics["recall@100"], metrics["mrr@10"],
                  n_q, n_d, round(seconds, 2))


def evaluate_task(retriever: Retriever, task: RetrievalTask) -> Result:
    started = time.perf_counter()
    handle = retriever.index(task.corpus)
    run = retriever.search(handle, task.queries, DEPTH)
    metrics = score(task.qrels, run)
    return _result(retriever.name, task.info.name, task.info.language, task.info.language, metrics,
                   len(task.queries), len(task.corpus), time.perf_counter() - started)


def evaluate_cross_lingual(retriever: Retriever, tasks: Sequence[RetrievalTask],
                           include_diagonal: bool = False) -> Iterable[Result]:
    """Queries of each language against the corpus of each other language (same ids).

    The diagonal is left out by default: for parallel sentences it is the identity (a sentence
    finding itself), which says nothing about retrieval.
    """
    for docs in tasks:
        started = time.perf_counter()
        handle = retriever.index(docs.corpus)
        index_seconds = time.perf_counter() - started
        for queries in tasks:
            if queries.info.language == docs.info.language and not include_diagonal:
                continue
            t0 = time.perf_counter()
            run = retriever.search(handle, queries.queries, DEPTH)
            metrics = score(docs.qrels, run)
            yield _result(retriever.name, docs.info.name, queries.info.language, docs.info.language, metrics,
                          len(queries.queries), len(docs.corpus), time.perf_counter() - t0 + index_seconds / len(tasks))
