"""fast-plaid as a peer of eval/bench_index.py, run by .venv-fast-plaid's Python (torch 2.11).

    .venv-fast-plaid/bin/python eval/peers/fast_plaid_peer.py WORKDIR --nbits 4

WORKDIR holds what the benchmark wrote: docs.f32 (every document's token vectors back to back,
raw float32), doc_lengths.npy, queries.npy and query_lengths.npy (.npy, the same way). This script builds a
fast-plaid index of them on the CPU, searches one query at a time (k=10 timed, k=100 for
recall) and writes result.json: build seconds, bytes on disk, latencies and the ids found.
"""

import argparse
import json
import shutil
import time
from pathlib import Path

import numpy as np
import torch
from fast_plaid import search


def split(flat: np.ndarray, lengths: np.ndarray) -> list[torch.Tensor]:
    ends = np.cumsum(lengths)
    return [torch.from_numpy(np.ascontiguousarray(flat[e - n:e])) for e, n in zip(ends, lengths)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("workdir", type=Path)
    parser.add_argument("--nbits", type=int, default=4)
    parser.add_argument("--dim", type=int, required=True)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--n-ivf-probe", type=int, default=8)  # fast-plaid's defaults
    parser.add_argument("--n-full-scores", type=int, default=4096)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    work = args.workdir
    flat = np.memmap(work / "docs.f32", dtype=np.float32, mode="r").reshape(-1, args.dim)
    docs = split(flat, np.load(work / "doc_lengths.npy"))
    queries = split(np.load(work / "queries.npy"), np.load(work / "query_lengths.npy"))
    folder = work / "fast-plaid-index"
    shutil.rmtree(folder, ignore_errors=True)
    started = time.perf_counter()
    index = search.FastPlaid(index=str(folder), device="cpu")
    index.create(documents_embeddings=docs, nbits=args.nbits)
    build = time.perf_counter() - started
    del docs
    size = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
    (work / "built.json").write_text(json.dumps({"build_s": build, "bytes": size}))  # tells a timeout's stage

    def run(k: int) -> tuple[list[float], list[list[int]]]:
        latencies, found = [], []
        for q in queries:
            t = time.perf_counter()
            hits = index.search(queries_embeddings=[q], top_k=k, n_ivf_probe=args.n_ivf_probe,
                                n_full_scores=args.n_full_scores, show_progress=False)[0]
            latencies.append(time.perf_counter() - t)
            found.append([int(doc) for doc, _ in hits])
        return latencies, found

    run(10)  # warm up
    lat10, res10 = run(10)
    _, res100 = run(100)
    (work / "result.json").write_text(json.dumps({
        "build_s": build, "bytes": size, "lat10": lat10, "res10": res10, "res100": res100,
        "version": __import__("importlib.metadata").metadata.version("fast-plaid"), "torch": torch.__version__}))


if __name__ == "__main__":
    main()
