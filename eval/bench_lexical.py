"""What BM25's analysis per language costs at search time: lexical search on the same chunks,
BM25 analysed plain (lower-cased words, as before) and with today's default (stop words, stems
and statistics per language, title field), in process, one thread.

    python -m eval.bench_lexical --index eval/out/real-bench/ours-4-real-100k     # bench_index's real 100k (--keep)

The index is copied once under --out and re-analysed there (`optimize --lexical-only`'s path);
the kept original is not touched. Every search starts with empty query caches (its language
guessed, its terms analysed), as a new query's does. Queries: SciFact's and the QA sets' questions (as in
eval/bench_dense.py) and the handbook questions of eval/lexical_analysis.py, every query
`--repeats` times, pooled; the median, 95th percentile and mean are printed per analysis, with
the time to re-analyse and the BM25 files' size.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
console = Console()


def queries(n: int) -> list[str]:
    from eval.bench_dense import real_queries
    from eval.lexical_analysis import read_questions

    handbook = [q for split in ("dev", "eval") for _, q, _ in read_questions(split)]
    return (real_queries(n) if n else []) + handbook


def bm25_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.glob("segments/*/bm25/*") if f.is_file())


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--index", type=Path, required=True)
    p.add_argument("--queries", type=int, default=100, help="SciFact and QA questions (the handbook's 105 added; "
                   "0: those only)")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--out", type=Path, default=ROOT / "eval" / "out" / "lexical-bench")
    args = p.parse_args(argv)
    from threadpoolctl import threadpool_limits

    from lfm2_retrieval.index import MultiVectorIndex
    from lfm2_retrieval.index.analysis import Analysis, forget_queries

    work = args.out / "index"
    if not (work / "manifest.json").exists():
        shutil.rmtree(work, ignore_errors=True)
        shutil.copytree(args.index, work)
    index = MultiVectorIndex(work)
    texts = queries(args.queries)
    rows = []
    with threadpool_limits(1):
        for label, analysis in (("plain (before)", Analysis.PLAIN), ("per language (default)", Analysis())):
            start = time.perf_counter()
            if index.manifest.analysis != analysis:
                index.reanalyze(analysis)
            seconds = time.perf_counter() - start
            index.search_lexical(texts, k=args.k)  # warm: files mapped, analysers loaded
            times = []
            for _ in range(args.repeats):
                for q in texts:
                    forget_queries()  # every search pays for its query's analysis, as a new query does
                    t = time.perf_counter()
                    index.search_lexical([q], k=args.k)
                    times.append((time.perf_counter() - t) * 1000)
            times.sort()
            rows.append((label, statistics.median(times), times[int(0.95 * (len(times) - 1))], statistics.mean(times),
                         seconds, bm25_bytes(work)))
    table = Table(title=f"Lexical search, {len(index):,} chunks ({args.index.name}), {len(texts)} queries x "
                        f"{args.repeats}, k={args.k}, 1 thread, in process", title_justify="left")
    for column in ("analysis", "p50 ms", "p95 ms", "mean ms", "re-analyse s", "BM25 MB"):
        table.add_column(column, justify="left" if column == "analysis" else "right")
    for label, p50, p95, mean, seconds, size in rows:
        table.add_row(label, f"{p50:.2f}", f"{p95:.2f}", f"{mean:.2f}", f"{seconds:.0f}", f"{size / 1e6:.0f}")
    console.print(table)
    console.print(f"default / plain, p50: {rows[1][1] / rows[0][1]:.2f}x")


if __name__ == "__main__":
    main()
