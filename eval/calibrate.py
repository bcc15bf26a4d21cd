"""Fit `relevance` (lfm2_retrieval/engine/calibration.py) on dev tasks, and measure how well it
estimates relevance on the evaluation tasks it never saw, beside the scores the engine gave before.

    python -m eval.calibrate                  # fit and report; the model folder is not touched
    python -m eval.calibrate --write          # also write calibration.json into the model's folder

Per query and mode (semantic, lexical, hybrid), the top `--k` hits the engine would show (the
compressed index's MaxSim, BM25 with the default analysis, their interpolation at the default
alpha, each leg `FUSION_DEPTH` deep) become rows: their legs' raw scores and rank, and whether
the qrels call them relevant. The dev tasks (NanoBEIR-style, and the NTREX dev grid: a
question in one language, documents in another) fit one logistic model a mode, each task (the
grid as one, and questions asked of another task's corpus, with no answer there, as one)
weighing the same; the evaluation tasks (eval/nanobeir.py's) measure it.

Printed per mode and split, for `relevance` and for the score the engine returns (hybrid: the
min-max fused score; semantic: MaxSim per query vector; lexical: BM25 squashed by x/(1+x)):
the Brier score, the expected calibration error (10 bins), the AUC over all hits of all queries
(whether one threshold separates relevant from not), and how many hits pass relevance 0.5 and
how often they are relevant; then the reliability table of the hybrid fit on the evaluation tasks.
"""

from __future__ import annotations

import argparse
import pickle
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table
from tqdm import tqdm

from lfm2_retrieval.engine.calibration import Calibration, features, fit_logistic, margins, reliability
from lfm2_retrieval.engine.fusion import FUSION_DEPTH, fuse
from lfm2_retrieval.evaluation.builders import build_atomically, build_dev_suite, build_local_suite
from lfm2_retrieval.evaluation.retrievers import BM25Retriever, ColBERTRetriever
from lfm2_retrieval.evaluation.tasks import discover, load_folder

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
console = Console(width=None if sys.stdout.isatty() else 160)
MODES = ("semantic", "lexical", "hybrid")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=None, help="PyLate ColBERT folder (default: the embedded model)")
    p.add_argument("--dev", type=Path, default=ROOT / "eval" / "out" / "nano-dev", help="dev task folders")
    p.add_argument("--eval", type=Path, default=ROOT / "eval" / "out" / "nano-data", help="evaluation task folders")
    p.add_argument("--shared-data", type=Path, default=SHARED_DATA)
    p.add_argument("--k", type=int, default=10, help="hits a query shows (the rows of the fit)")
    p.add_argument("--max-pairs", type=int, default=0, help="cross-lingual pairs per family (0: all)")
    p.add_argument("--write", action="store_true", help="write calibration.json into the model's folder")
    p.add_argument("--out", type=Path, default=ROOT / "eval" / "out" / "calibration", help="the rows, kept")
    return p.parse_args(argv)


def tasks_in(folder: Path, builder, shared: Path):
    if not discover(folder):
        if not shared.is_dir():
            sys.exit(f"error: no tasks in {folder} and no shared data at {shared}")
        build_atomically(builder, shared, folder)
    return [load_folder(f) for f in discover(folder)]


def rows_of(task_list, encoder, k: int, max_pairs: int) -> dict[str, tuple[list, list, list]]:
    """{mode: (rows (maxsim, bm25, rank, engine score), labels, columns)} over every monolingual
    task and every off-diagonal pair of each parallel family (a family is one column)."""
    semantic = ColBERTRetriever(encoder, "model", use_index=True)
    lexical = BM25Retriever()
    jobs = []  # (documents task, queries task, column)
    families = defaultdict(list)
    for t in task_list:
        (families[t.info.name].append(t) if t.info.parallel else jobs.append((t, t, t.key)))
    for name, group in families.items():
        pairs = [(d, q, f"{name} grid") for d in group for q in group if q is not d]
        jobs += pairs[:max_pairs] if max_pairs else pairs
    # Questions whose answer is not in the collection: each monolingual task's queries against a
    # corpus of another family (QA questions against SciFact's abstracts, SciFact's claims against
    # Wikipedia paragraphs), every hit irrelevant. Without them the fit learns that a first hit
    # is usually relevant, true of benchmarks, not of "recipe for chocolate cake" in a manual.
    mono = [t for t in task_list if not t.info.parallel]
    for t in mono:
        other = next((o for o in mono if o.info.name != t.info.name), None)
        if other is not None:
            jobs.append((other, t, "unanswerable"))
    out = {mode: ([], [], []) for mode in MODES}
    handles = {}
    for docs, queries, column in tqdm(jobs, desc="Retrieving", unit="pair"):
        if id(docs) not in handles:
            handles.clear()
            handles[id(docs)] = (semantic.index(docs.corpus), lexical.index(docs.corpus))
        s_handle, l_handle = handles[id(docs)]
        answerable = column != "unanswerable"
        qids = [q for q in queries.queries if q in docs.qrels or not answerable]
        vectors = encoder.encode_queries([queries.queries[q] for q in qids])
        sem = semantic.search_vectors(s_handle, qids, vectors, FUSION_DEPTH)
        lex = lexical.search(l_handle, {q: queries.queries[q] for q in qids}, FUSION_DEPTH)
        for qid, v in zip(qids, vectors):
            relevant = {d for d, r in docs.qrels[qid].items() if r > 0} if answerable else set()
            s = {d: score / len(v) for d, score in sem.get(qid, {}).items()}
            lx = lex.get(qid, {})
            floor_s, floor_l = min(s.values(), default=0.0), min(lx.values(), default=0.0)
            fused = fuse(list(sem.get(qid, {}).items()), list(lx.items()))
            fused_score = dict(fused)
            for mode, ranking in (("semantic", list(s)), ("lexical", list(lx)), ("hybrid", [d for d, _ in fused])):
                for rank, d in enumerate(ranking[:k], start=1):
                    shown = {"semantic": s.get(d), "lexical": lx.get(d), "hybrid": fused_score.get(d)}[mode]
                    out[mode][0].append((s.get(d, floor_s), lx.get(d, floor_l), rank, shown))
                    out[mode][1].append(d in relevant)
                    out[mode][2].append(column)
    return out


def engine_score(mode: str, row) -> float:
    """The score the engine returned for this hit, read as a probability."""
    shown = row[3]
    if mode == "hybrid":
        return shown
    if mode == "semantic":
        return float(np.clip(shown, 0, 1))
    return shown / (1 + shown)


def column_weights(columns: list[str]) -> np.ndarray:
    """Each column (a task; a cross-lingual family as one) weighs the same in the fit, as each
    counts once in tune_fusion's mean: the 72 NTREX pairs would otherwise be 95% of the rows."""
    counts = defaultdict(int)
    for c in columns:
        counts[c] += 1
    return np.array([len(columns) / (len(counts) * counts[c]) for c in columns])


def inputs(mode: str, rows) -> dict[str, np.ndarray]:
    """relevance()'s arguments for these rows: the margin against each query's first hit as
    engine/engine.py computes it (rows come a query at a time, rank 1 first)."""
    arr = np.array([r[:3] for r in rows], np.float64)
    shown = np.array([r[3] for r in rows], np.float64)
    first = np.maximum.accumulate(np.where(arr[:, 2] == 1, np.arange(len(rows)), 0))  # each row's rank-1 row
    # (a semantic row's shown score is its maxsim, a lexical row's its BM25: margins reads those)
    return {"rank": arr[:, 2], "margin": margins(mode, first, arr[:, 0], arr[:, 1], shown),
            "maxsim": arr[:, 0], "bm25": arr[:, 1]}


def relevance_of(calibration: Calibration, mode: str, rows) -> np.ndarray:
    return calibration.relevance(mode, **inputs(mode, rows))


def auc(p: np.ndarray, y: np.ndarray) -> float:
    """The probability that a relevant hit outscores an irrelevant one, over all hits of all
    queries (ties half): whether a score ranks across queries, which a threshold needs."""
    from scipy.stats import rankdata

    ranks, y = rankdata(p), np.asarray(y, bool)
    positives, negatives = int(y.sum()), int((~y).sum())
    return float((ranks[y].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def main(argv=None) -> None:
    args = parse_args(argv)
    from lfm2_retrieval import ColBERTEncoder
    from lfm2_retrieval.model.locations import default_model

    model = args.model or default_model()
    encoder = ColBERTEncoder.from_pretrained(model)
    # The rows, kept per model and setting: refitting (a new feature) does not search again.
    cache = args.out / f"rows-{encoder.fingerprint}-k{args.k}-p{args.max_pairs}.pkl"
    if cache.exists():
        dev, held = pickle.loads(cache.read_bytes())
    else:
        dev = rows_of(tasks_in(args.dev, build_dev_suite, args.shared_data), encoder, args.k, args.max_pairs)
        held = rows_of(tasks_in(args.eval, build_local_suite, args.shared_data), encoder, args.k, args.max_pairs)
        args.out.mkdir(parents=True, exist_ok=True)
        cache.write_bytes(pickle.dumps((dev, held)))

    weights = {}
    for mode in MODES:
        x = features(mode, **inputs(mode, dev[mode][0]))
        weights[mode] = fit_logistic(x, np.array(dev[mode][1], np.float64), column_weights(dev[mode][2]))
    calibration = Calibration(weights, fitted_on=f"dev tasks of {args.dev.name} (NanoBEIR-style, the NTREX dev grid, "
                                                 f"questions asked of another task's corpus), top {args.k} hits a "
                                                 f"mode, each task weighing the same: eval/calibrate.py")

    table = Table(title=f"Calibration, top {args.k} hits a query (fitted on dev; 'eval' never seen)",
                  title_justify="left")
    for c in ("mode", "split", "hits", "relevant", "Brier: relevance / score", "ECE: relevance / score",
              "AUC: relevance / score", "relevance > 0.5: hits, relevant"):
        table.add_column(c, justify="left" if c in ("mode", "split") else "right")
    for mode in MODES:
        for split, data in (("dev", dev), ("eval", held)):
            rows, labels, _ = data[mode]
            y = np.array(labels, np.float64)
            p = relevance_of(calibration, mode, rows)
            q = np.array([engine_score(mode, r) for r in rows])
            (b_p, e_p, _), (b_q, e_q, _) = reliability(p, y), reliability(q, y)
            above = p > 0.5
            table.add_row(mode, split, f"{len(y):,}", f"{y.mean():.3f}", f"{b_p:.3f} / {b_q:.3f}",
                          f"{e_p:.3f} / {e_q:.3f}", f"{auc(p, y):.3f} / {auc(q, y):.3f}",
                          f"{above.mean():.1%}, {y[above].mean():.2f}" if above.any() else "-")
    console.print(table)
    for split, data in (("dev", dev), ("eval", held)):
        rows, _, columns = data["hybrid"]
        p = relevance_of(calibration, "hybrid", rows)
        first = np.array([r[2] == 1 for r in rows])
        away = np.array([c == "unanswerable" for c in columns])
        console.print(f"{split}: hybrid first hits' mean relevance: answerable {p[first & ~away].mean():.2f}, "
                      f"unanswerable {p[first & away].mean():.2f} (the old score: 1.00 for both)")

    rows, labels, _ = held["hybrid"]
    _, _, bins = reliability(relevance_of(calibration, "hybrid", rows), np.array(labels))
    detail = Table(title="Hybrid on the evaluation tasks: relevance against how often hits were relevant",
                   title_justify="left")
    for c in ("mean relevance", "fraction relevant", "hits"):
        detail.add_column(c, justify="right")
    for mean_p, rate, n in bins:
        detail.add_row(f"{mean_p:.2f}", f"{rate:.2f}", f"{n:,}")
    console.print(detail)
    for mode, (w, b) in weights.items():
        console.print(f"{mode}: weights {', '.join(f'{v:.3f}' for v in w)}, bias {b:.3f}")
    if args.write:
        calibration.save(encoder.source_dir)
        console.print(f"wrote {Path(encoder.source_dir) / 'calibration.json'}")


if __name__ == "__main__":
    main()
