"""Indexing throughput: `lfm2-search index` on a folder of SciFact files, against its ceiling.

Two rows, run `--repeats` times interleaved (medians; these machines are noisy):
- the encoder alone on the same chunk texts (`encode_documents`): the ceiling of the pipeline;
- the full pipeline (read, chunk, encode, compress, commit), as `lfm2-search index` runs it.
Tokens are the chunks' model tokens, as `lfm2-search index` reports them.

(Overlapping the compression of one batch with the encoding of the next, on a background
thread, was measured with this script: 11,017 against 10,993 tokens/s, no gain on 2 cores where
the encoder already uses both, so the pipeline stays sequential.)

    .venv/bin/python -m eval.bench_ingest                     # 1,000 files, 3 repeats (~5 minutes)
    .venv/bin/python -m eval.bench_ingest --docs 300 --repeats 1
    .venv/bin/python -m eval.bench_ingest --docs 300 --dense e5    # also with a dense slot (issue 35)

With --dense SPEC the pipeline also runs with a dense slot filled by that encoder (e5: the torch
multilingual-e5-small; model: the model's own head): the cost of the third signal at indexing.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from eval.bench_api import load_scifact
from lfm2_retrieval.engine import SearchEngine, TextDocument
from lfm2_retrieval.ingest import Ingestor
from lfm2_retrieval.model.locations import default_model


def write_folder(docs: list[dict], folder: Path) -> None:
    folder.mkdir(parents=True)
    for d in docs:
        (folder / f"{d['_id']}.txt").write_text(f"{d.get('title', '')}\n\n{d['text']}", encoding="utf-8")


def run_pipeline(model: str, folder: Path, work: Path, dense: str | None = None) -> tuple[float, int]:
    shutil.rmtree(work, ignore_errors=True)
    engine = SearchEngine.open(work, model=model, create=True, dense=dense)
    report = Ingestor(engine).run([folder])
    return report.seconds, report.tokens


def run_encoder(engine: SearchEngine, docs: list[dict]) -> tuple[float, int]:
    chunks = [c for d in docs for c in engine.prepare(TextDocument(d["_id"], f"{d.get('title', '')}\n\n{d['text']}"))]
    start = time.perf_counter()
    engine.encode_chunks(chunks)
    return time.perf_counter() - start, sum(c.n_tokens for c in chunks)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="model folder or hub id (default: the embedded model)")
    parser.add_argument("--docs", type=int, default=1000, help="SciFact documents, one file each")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--dense", action="append", default=[], help="also index with this dense encoder "
                        "(e5, model or a sentence-transformers folder; repeatable)")
    args = parser.parse_args()
    args.model = args.model or default_model()
    docs, _ = load_scifact(args.docs)
    rows: dict[str, list[float]] = {"encoder alone (ceiling)": [], "lfm2-search index (whole pipeline)": [],
                                    **{f"lfm2-search index --dense {d}": [] for d in args.dense}}
    with tempfile.TemporaryDirectory(prefix="lfm2-bench-ingest-") as tmp:
        folder = Path(tmp) / "docs"
        write_folder(docs, folder)
        engine = SearchEngine.open(Path(tmp) / "encoder-only", model=args.model, create=True)
        run_encoder(engine, docs[:50])  # warm-up
        for _ in range(args.repeats):
            for name, fn in (
                ("encoder alone (ceiling)", lambda: run_encoder(engine, docs)),
                ("lfm2-search index (whole pipeline)", lambda: run_pipeline(args.model, folder, Path(tmp) / "a")),
                *[(f"lfm2-search index --dense {d}",
                   lambda d=d: run_pipeline(args.model, folder, Path(tmp) / "a", dense=d)) for d in args.dense],
            ):
                seconds, tokens = fn()
                rows[name].append(tokens / seconds)
                print(f"{name}: {tokens / seconds:,.0f} tokens/s ({tokens:,} tokens, {seconds:.1f} s)", file=sys.stderr)
    print(f"\n{len(docs)} SciFact files, model {args.model}, {args.repeats} interleaved repeats (median)\n")
    print("| system | tokens/s | runs |")
    print("|---|---:|---|")
    for name, rates in rows.items():
        print(f"| {name} | {statistics.median(rates):,.0f} | {', '.join(f'{r:,.0f}' for r in rates)} |")


if __name__ == "__main__":
    main()
