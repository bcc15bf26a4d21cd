"""Index benchmark: this index against exhaustive MaxSim, fast-plaid, LanceDB, pylate's PLAID and Voyager.

One table, side by side, per collection: build time, bytes per token on disk, single-query
latency p50/p95, QPS, and recall@10 / recall@100 against exhaustive MaxSim over the raw fp32
vectors. Collections: token vectors of BEIR SciFact from this project's encoder (the embedded
trained model); `--real 10k,100k`: the first chunks of a real multilingual collection (QA
paragraphs in 8 languages, SciFact, NTREX-128 in 128 languages, chunked as `lfm2-search index`
chunks them; eval/collections/real_vectors.py encodes them once and caches the raw vectors) with 84 queries
in 9 languages; and synthetic clustered vectors at 10k / 100k / 1M documents: 16 to 48 tokens
each, 128-d, by default; `--doc-tokens 150-220 --dim 96` gives chunks of the length and width
that `lfm2-search index` writes with the embedded model. Peers run only up to --peer-max-docs
(fast-plaid and pylate PLAID up to --plaid-max-docs), on --peer-queries of the queries; rows
say when a system was skipped and why. LanceDB (multivector column, MaxSim) runs flat and with
its IVF_PQ index (defaults, and searched wider); fast-plaid runs in its own virtual environment
(scripts/setup-fast-plaid.sh), as a subprocess; LanceDB needs `pip install -c
.venv/constraints.txt lancedb`.

    .venv/bin/python -m eval.bench_index --sizes 10k          # a few minutes
    .venv/bin/python -m eval.bench_index --sizes 10k,100k     # with SciFact and pylate PLAID (~20 minutes)
    .venv/bin/python -m eval.bench_index --sizes 10k --no-scifact --doc-tokens 150-220 --dim 96 \
        --peers lancedb,lancedb-ivfpq,fast-plaid               # real chunk lengths
    .venv/bin/python -m eval.bench_index --sizes 1m --no-scifact --nbits 2 --own-queries 10 --peers ""  # ~1 hour
    .venv/bin/python -m eval.bench_index --real 100k --sizes "" --no-scifact --nbits 4 --torch-max-docs 0 \
        --peers fast-plaid,plaid,lancedb-ivfpq,lancedb-ivfpq-wide,lancedb --peer-max-docs 100000 \
        --plaid-max-docs 10000 --peer-queries 12 --keep eval/out/real-bench    # ~25 min after the encoding
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

# Before torch: the package sets how long torch's OpenMP workers spin (lfm2_retrieval/__init__.py),
# as it does in `lfm2-search serve`; imported after torch it could not.
from lfm2_retrieval.index import MultiVectorIndex, default_num_centroids
from lfm2_retrieval.index.codec import plaid_num_centroids

import numpy as np
import torch

from eval.collections import (DIM, Collection, ground_truth, index_queries, query_subset, real,
                              scifact, subset_positions, synthetic)
from eval.measure import peak_rss_gb, recall, row, time_queries
from eval.peers import PEERS, SLOW_BUILDS
from eval.peers.torch_exhaustive import bench_exhaustive_torch

def existing_index(
    path: Path, per_language: int, dev: bool = False
) -> tuple[MultiVectorIndex, list[str], list[np.ndarray]]:
    """An index built by `lfm2-search index`, its queries, and their vectors from the index's model."""
    from lfm2_retrieval import ColBERTEncoder

    index = MultiVectorIndex(path)
    source = index.manifest.model_source
    if not source:
        raise SystemExit(f"{path} does not name its model (model_source); rebuild it with lfm2-search index")
    texts = index_queries(per_language, dev=dev)
    encoder = ColBERTEncoder.from_pretrained(source)
    return index, texts, [np.asarray(q, np.float32) for q in encoder.encode_queries(texts)]


def bench_existing(path: Path, per_language: int, variants: dict[str, dict], repeats: int = 1,
                   dev: bool = False, k: int = 10) -> list[dict]:
    """This index's search on an index built by `lfm2-search index` (real chunks, real vectors),
    at its defaults for k and at `variants` (name -> SearchParams fields), against its own
    exhaustive MaxSim, which is computed once per query set and k and kept beside the index (it
    takes seconds a query). dev: the tuning queries (index_queries). k: 10 or 100, the recall
    column it fills."""
    from lfm2_retrieval.index.search import SearchParams

    index, texts, queries = existing_index(path, per_language, dev)
    stats = index.stats()
    name = f"{path.parent.name if path.name == 'index' else path.name} ({stats['chunks']} real chunks, " \
           f"{stats['segments']} segments){', dev queries' if dev else ''}"
    key = f"{index.commit}:{hashlib.blake2b(chr(0).join(texts).encode(), digest_size=8).hexdigest()}"
    truth_file = path.parent / f"{path.name}.exhaustive-top{k}.json"
    kept = json.loads(truth_file.read_text()) if truth_file.exists() else {}
    kept = {kept["key"]: kept["top10"]} if "key" in kept else kept  # the one-set file of earlier versions
    if key not in kept:
        t = time.perf_counter()
        kept[key] = [[h.id for h in index.search(q, k=k, exhaustive=True)] for q in queries]
        truth_file.write_text(json.dumps(kept))
        print(f"   exhaustive top {k}: {time.perf_counter() - t:.0f} s", file=sys.stderr)
    truth = kept[key]
    col = Collection(name, stats["chunks"], stats["tokens"], queries, lambda: iter(()), dim=index.dim)
    col.truth = {k: truth}
    base = SearchParams.for_k(k, index.manifest.nbits)
    settings = {
        label: SearchParams(**{**base.__dict__, **changes}) for label, changes in {"defaults": {}, **variants}.items()
    }
    for params in settings.values():
        for q in queries[:3]:
            index.search(q, k=k, params=params)
    # Rounds over all settings in turn, so that a drift of the machine's speed (a shared VM's)
    # falls on every setting alike; latencies of all rounds are pooled.
    lat = {label: [] for label in settings}
    got = {}
    for _ in range(repeats):
        for label, params in settings.items():
            times, got[label] = time_queries(
                lambda q: [h.id for h in index.search(q, k=k, params=params)], queries)  # noqa: B023 - called within this iteration
            lat[label] += times
    rows = []
    for label in settings:
        rows.append(row(f"lfm2-search PLAID nbits={index.manifest.nbits}, {label}, k={k}", 0.0,
                        stats["bytes_on_disk"] / stats["tokens"], lat[label], got[label],
                        got[label] if k == 100 else None, col,
                        f"R@{k} against its own exhaustive search; {len(queries)} queries (20 SciFact, "
                        f"{per_language} a QA language) x {repeats} rounds; bytes/token: the whole folder"))
        print(rows[-1], file=sys.stderr)
    if k == 10:  # the engine's other modes, at the k a user asks most
        rows += bench_engine_modes(index, texts, queries, col, stats["bytes_on_disk"] / stats["tokens"], repeats)
    return rows


def bench_engine_modes(index: MultiVectorIndex, texts: list[str], queries: list[np.ndarray], col: Collection,
                       bytes_per_token: float, repeats: int = 1) -> list[dict]:
    """The engine's lexical and hybrid searches (BM25; MaxSim and BM25 fused, its default) on
    the same open index and queries, in process, the query vectors encoded beforehand as above."""
    from lfm2_retrieval.engine import SearchEngine, SearchRequest

    engine = SearchEngine(index)  # no encoder is loaded: the vectors are given
    rows = []
    for mode in ("lexical", "hybrid"):
        def search(i: int) -> list:
            request = SearchRequest(queries=[texts[i]], k=10, mode=mode)  # noqa: B023 - called within this iteration
            return engine.answer(request, vectors=[queries[i]]).results[0].hits
        for i in range(3):
            search(i)
        lat = [t for _ in range(repeats) for t in time_queries(search, range(len(queries)))[0]]
        rows.append(
            {
                "collection": col.name,
                "system": f"lfm2-search engine, {mode} (in process)",
                "build_s": 0.0,
                "bytes_per_token": bytes_per_token,
                "p50_ms": 1000 * statistics.median(lat),
                "p95_ms": 1000 * float(np.percentile(lat, 95)),
                "qps": len(lat) / sum(lat),
                "recall@10": None,
                "recall@100": None,
                "note": "query vectors encoded beforehand; hybrid fuses the top 50 of each side (the default fusion)",
            }
        )
        print(rows[-1], file=sys.stderr)
    return rows


def build_ours(col: Collection, nbits: int, path: Path, centroids: int | None = None
               ) -> tuple[MultiVectorIndex, float, str]:
    """(index, build seconds, note). An index that a --keep run finished before for the same
    collection and nbits is opened instead (its build time is the one that run recorded)."""
    done = path / "bench-build.json"
    if done.exists():
        info = json.loads(done.read_text())
        if (info["collection"], info["n_docs"], info["nbits"], info.get("centroids")) == (
                col.name, col.n_docs, nbits, centroids):
            print(f"   reusing {path} (built in {info['build_s']:.0f} s)", file=sys.stderr)
            return (
                MultiVectorIndex(path),
                info["build_s"],
                f"build peak RSS {info['build_rss_gb']:.1f} GB (earlier run)",
            )
    shutil.rmtree(path, ignore_errors=True)
    t = time.perf_counter()
    index = MultiVectorIndex.create(path, dim=col.dim, nbits=nbits, num_centroids=centroids,
                                    model_fingerprint=col.model_fingerprint, model_source=col.model_source)
    with index.writer(expected_tokens=col.n_tokens) as w:
        for start, docs in col.chunks():
            ids = [str(start + i) for i in range(len(docs))]
            if col.records is None:
                w.add(ids, docs)
            else:  # texts (BM25) and metadata too; ids stay numbers, for recall
                part = col.records[start:start + len(docs)]
                w.add(ids, docs, [c.text for c in part], [c.metadata for c in part])
    build, rss = time.perf_counter() - t, peak_rss_gb()  # the process's peak so far: generation included
    done.write_text(json.dumps({"collection": col.name, "n_docs": col.n_docs, "nbits": nbits, "centroids": centroids,
                                "build_s": build, "build_rss_gb": rss}))
    print(f"   built in {build:.0f} s, peak RSS {rss:.1f} GB", file=sys.stderr)
    return index, build, f"build peak RSS {rss:.1f} GB"


def _set_plan_dtype(value: str | None) -> None:
    """$LFM2_SEARCH_PLAN_DTYPE for the searches that follow (None: the machine's choice)."""
    from lfm2_retrieval.index.search import PLAN_DTYPE_ENV, plan_dtype

    if value is None:
        os.environ.pop(PLAN_DTYPE_ENV, None)
    else:
        os.environ[PLAN_DTYPE_ENV] = value
    plan_dtype.cache_clear()


def bench_ours(col: Collection, nbits: int, workdir: Path, own_queries: int | None = None, keep: bool = False,
               centroid_factor: float | None = None, peer_queries: int | None = None,
               plan_dtypes: Sequence[str] = ("",)) -> list[dict]:
    """This index at nbits, with its default centroid count, or `centroid_factor` times PLAID's:
    a row per query-plan precision in plan_dtypes ("" the default: search.plan_dtype), all on
    the one index. peer_queries: also give recall on the queries the peers search (query_subset)."""
    from lfm2_retrieval.index.search import PLAN_DTYPE_ENV, plan_dtype

    centroids = None if centroid_factor is None else int(centroid_factor * plaid_num_centroids(col.n_tokens))
    if centroids == default_num_centroids(col.n_tokens):
        centroids, centroid_factor = None, None  # the default's row (and a kept index of it)
    path = workdir / (f"ours-{nbits}-{col.name.split()[0]}" + ("" if centroids is None else f"-k{centroids}"))
    index, build, build_note = build_ours(col, nbits, path, centroids)
    # Vector storage only (codes, residuals, offsets, inverted file); the rest (texts, records,
    # BM25 of a real collection) is reported in the note as the document payload.
    vector_files = {"codes.bin", "residuals.bin", "doc_offsets.npy", "ivf_index.npy", "ivf_lists.npy",
                    "ivf_offsets.npy", "ivf_docs.npy"}
    files = [f for f in (path / "segments").rglob("*") if f.is_file()]
    seg_bytes = sum(f.stat().st_size for f in files if f.name in vector_files and f.parent.parent.name == "segments")
    payload_bytes = sum(f.stat().st_size for f in files) - seg_bytes
    def to_int(hits) -> list[int]:
        return [int(h.id) for h in hits]

    # What the search's pruning loses, apart from compression: against the index's own
    # exhaustive MaxSim over the same decompressed vectors (no query plan involved).
    # At 1M documents one exhaustive query decompresses 32M tokens, so --own-queries can cap it.
    n_own = min(len(col.queries), own_queries or len(col.queries))
    own = [to_int(index.search(q, k=10, exhaustive=True)) for q in col.queries[:n_own]]
    system = f"lfm2-search PLAID nbits={nbits}" + ("" if centroids is None else
                                                    f", {centroids:,} centroids ({centroid_factor:g}x PLAID's rule)")
    peers = query_subset(col, peer_queries)
    keep_at = subset_positions(len(col.queries), len(peers.queries))
    rows, asked = [], os.environ.get(PLAN_DTYPE_ENV)
    for dtype in plan_dtypes:
        _set_plan_dtype(dtype or None)
        for q in col.queries[:3]:
            index.search(q, k=10)  # warm up: compiled kernels load from numba's cache
        search = index.search  # bound here: `index` is deleted below to free its memory
        lat10, res10 = time_queries(lambda q: to_int(search(q, k=10)), col.queries)  # noqa: B023 - used at once
        _, res100 = time_queries(lambda q: to_int(search(q, k=100)), col.queries)  # noqa: B023 - used at once
        over = "" if n_own == len(col.queries) else f" (first {n_own} queries)"
        if peers is not col and 10 in col.truth:
            over += (f"; on the peers' {len(keep_at)} queries R@10 "
                     f"{recall([res10[i] for i in keep_at], peers.truth[10], 10):.3f}, R@100 "
                     f"{recall([res100[i] for i in keep_at], peers.truth[100], 100):.3f}")
        plan = f", {str(plan_dtype()).removeprefix('torch.')} plan" if len(plan_dtypes) > 1 or dtype else ""
        rows.append(row(system + plan, build, seg_bytes / col.n_tokens, lat10, res10, res100, col,
                        f"R@10 vs its own exhaustive search {recall(res10[:n_own], own, 10):.3f}{over}; "
                        f"{build_note}, peak RSS {peak_rss_gb():.1f} GB with the searches, "
                        f"{index.stats()['segments']} segments, {index.stats()['centroids']} centroids, "
                        f"+{payload_bytes / col.n_tokens:.1f} B/token document payload"))
        print(rows[-1], file=sys.stderr)
    _set_plan_dtype(asked)
    del index
    if not keep:
        shutil.rmtree(path, ignore_errors=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10k", help="synthetic sizes, comma separated: 10k,100k,1m")
    parser.add_argument("--no-scifact", action="store_true")
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--peer-max-docs", type=int, default=10_000,
                        help="largest collection the pylate peers and torch exhaustive run on")
    parser.add_argument("--plaid-max-docs", type=int, help="largest collection fast-plaid and pylate PLAID run on "
                        "(default --peer-max-docs): their CPU builds grow with tokens x centroids, 681 s (fast-plaid) "
                        "and 412 s (pylate) at 10k real chunks here, hours at 100k")
    parser.add_argument("--torch-max-docs", type=int, default=100_000)
    parser.add_argument("--peers", default="plaid,voyager", help="peers to run, comma separated (empty for none): "
                        + ", ".join(PEERS))
    parser.add_argument("--doc-tokens", default="16-48", help="tokens a synthetic document, MIN-MAX (150-220: "
                        "the chunks `lfm2-search index` writes)")
    parser.add_argument(
        "--dim", type=int, default=DIM, help="width of synthetic token vectors (96: the embedded model)"
    )
    parser.add_argument("--nbits", default="2,4", help="residual bits of this index's rows (comma separated)")
    parser.add_argument("--centroids", default="default", help="this index's centroid counts, comma separated, a "
                        "row each: `default` (its rule) or a multiple of ColBERTv2/PLAID's rule (e.g. default,1,4)")
    parser.add_argument("--plan-dtypes", default="", help="query-plan precisions of this index's rows, comma "
                        "separated (float32,bfloat16: a row each on the one index; default: the machine's choice)")
    parser.add_argument("--own-queries", type=int, help="queries for the R@10-vs-own-exhaustive note (default all; "
                        "at 1M each one decompresses 32M tokens)")
    parser.add_argument("--raw-truth-max-docs", type=int, default=1_000_000,
                        help="largest collection whose recall against raw vectors is computed (at 1M chunks of "
                             "150-220 tokens it takes over an hour; rows then give recall against the index's "
                             "own exhaustive search only)")
    parser.add_argument("--real", default="", help="real collections, comma separated (e.g. 10k,100k): the first "
                        "chunks of the real multilingual collection with the embedded model's raw vectors "
                        "(eval/collections/real_vectors.py, encoded once and cached) and the --index queries")
    parser.add_argument("--peer-queries", type=int, help="peers search only this many of the queries, evenly "
                        "spaced (LanceDB's flat search takes seconds a query at 100k real chunks); the rows of "
                        "this index then also give recall on the same queries")
    parser.add_argument("--peer-timeout", type=float, help="seconds a peer may take in all (build and searches) "
                        "before it is stopped and its row says so (fast-plaid only: it runs as a subprocess)")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    parser.add_argument("--keep", type=Path, help="build this index's collections in this folder and keep them; a "
                        "later run with the same --keep reuses a finished one (search again without rebuilding)")
    parser.add_argument(
        "--index",
        type=Path,
        help="also search this index built by `lfm2-search index` (e.g. "
        "eval/out/real-collection/index from eval/collections/real_collection.py): real chunks, real vectors, "
        "against its own exhaustive search",
    )
    parser.add_argument("--index-queries", type=int, default=8, help="questions per QA language for --index "
                        "(beside 20 SciFact queries)")
    parser.add_argument("--dev", action="store_true", help="--index with the tuning queries (SciFact's 20-39 and "
                        "the next questions of each QA language), never the reported ones")
    parser.add_argument("--index-k", default="10", help="k of the --index searches, comma separated (10, 100): "
                        "each against the index's own exhaustive top k")
    parser.add_argument("--repeats", type=int, default=1, help="rounds of the --index queries, every setting "
                        "in turn each round (latencies pooled)")
    parser.add_argument("--variants", default="", help="search settings tried on --index beside the defaults, "
                        "e.g. 'rerank=96;candidates=1024,rerank=128'")
    args = parser.parse_args()
    torch.set_num_threads(torch.get_num_threads())

    sizes = {"1k": 1_000, "10k": 10_000, "100k": 100_000, "1m": 1_000_000}
    collections = [] if args.no_scifact else [scifact(args.queries)]
    low, high = (int(x) for x in args.doc_tokens.split("-"))
    collections += [synthetic(sizes[s.strip().lower()], args.queries, args.dim, (low, high))
                    for s in args.sizes.split(",") if s.strip()]
    collections += [real(sizes[s.strip().lower()], args.index_queries) for s in args.real.split(",") if s.strip()]
    rows = []
    if args.index:
        variants = {}
        for spec in [v.strip() for v in args.variants.split(";") if v.strip()]:
            variants[spec] = {k: (float(v) if k == "centroid_threshold" else int(v))
                              for k, v in (item.split("=") for item in spec.split(","))}
        for k in [int(x) for x in args.index_k.split(",")]:
            rows += bench_existing(args.index, args.index_queries, variants, args.repeats, args.dev, k)
    for col in [c for c in collections if c is not None]:
        print(f"== {col.name}: {col.n_docs} docs, {col.n_tokens} tokens", file=sys.stderr)
        t = time.perf_counter()
        if col.n_docs <= args.raw_truth_max_docs:
            col.truth = {100: ground_truth(col, 100)}
            col.truth[10] = [t[:10] for t in col.truth[100]]
            print(f"   exhaustive ground truth: {time.perf_counter() - t:.0f} s", file=sys.stderr)
        else:  # recall against raw vectors left out; the note still gives it against own exhaustive search
            col.truth = {}
        with tempfile.TemporaryDirectory(prefix="lfm2-bench-index-") as tmp:
            work = Path(tmp)
            if args.keep:
                args.keep.mkdir(parents=True, exist_ok=True)
            for nbits in [int(b) for b in args.nbits.split(",") if b.strip()]:
                for factor in [None if f.strip() == "default" else float(f) for f in args.centroids.split(",")
                               if f.strip()]:
                    rows += bench_ours(col, nbits, args.keep or work, args.own_queries, keep=bool(args.keep),
                                       centroid_factor=factor, peer_queries=args.peer_queries,
                                       plan_dtypes=args.plan_dtypes.split(","))
                    gc.collect()
            if col.n_docs <= args.torch_max_docs:
                rows.append(bench_exhaustive_torch(col))
                gc.collect()
            else:
                rows.append({"collection": col.name, "system": "exhaustive MaxSim (torch, fp32)",
                             "note": f"skipped above --torch-max-docs={args.torch_max_docs} (raw vectors: "
                                     f"{col.n_tokens * col.dim * 4 / 1e9:.1f} GB); "
                                     + ("recall truth computed chunk by chunk" if col.truth else
                                        "no recall against raw vectors (above --raw-truth-max-docs)")})
            peer_col = query_subset(col, args.peer_queries)
            for kind in [p.strip() for p in args.peers.split(",") if p.strip()]:
                slow = kind in SLOW_BUILDS and args.plaid_max_docs is not None
                flag, limit = ("plaid", args.plaid_max_docs) if slow else ("peer", args.peer_max_docs)
                if col.n_docs <= limit:
                    try:
                        rows.append(PEERS[kind](peer_col, work, args.peer_timeout))
                        if peer_col is not col:
                            rows[-1]["note"] += f"; {len(peer_col.queries)} of the {len(col.queries)} queries"
                    except Exception as exc:  # a peer failing is a result, not a crash
                        rows.append({"collection": col.name, "system": kind, "note": f"failed: {exc!r}"[:200]})
                else:
                    rows.append({"collection": col.name, "system": kind,
                                 "note": f"skipped above --{flag}-max-docs={limit}"
                                         + (": its CPU build grows with tokens x centroids" if slow else "")})
                print(rows[-1], file=sys.stderr)
                gc.collect()

    print(
        f"\nIndex benchmark, {torch.get_num_threads()} threads, {args.queries} queries a synthetic collection, "
        "k=10 latency "
        f"(one query at a time), recall against exhaustive MaxSim on raw fp32 vectors\n"
    )
    print("| collection | system | build s | bytes/token | p50 ms | p95 ms | QPS | R@10 | R@100 | note |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for r in rows:
        if "p50_ms" not in r:
            print(f"| {r['collection']} | {r['system']} | | | | | | | | {r['note']} |")
            continue
        r10, r100 = (f"{r[f'recall@{n}']:.3f}" if r[f"recall@{n}"] is not None else "" for n in (10, 100))
        print(f"| {r['collection']} | {r['system']} | {r['build_s']:.1f} | {r['bytes_per_token']:.1f} | "
              f"{r['p50_ms']:.1f} | {r['p95_ms']:.1f} | {r['qps']:.1f} | {r10} | {r100} | {r['note']} |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
