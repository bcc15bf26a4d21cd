"""fast-plaid run from its own virtual environment (fast_plaid_peer.py is what that Python runs)."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np
import torch

from eval.collections import Collection
from eval.measure import row


FAST_PLAID_PYTHON = Path(__file__).resolve().parents[2] / ".venv-fast-plaid" / "bin" / "python"


def bench_fast_plaid(col: Collection, workdir: Path, nbits: int = 4, timeout: float | None = None) -> dict:
    """fast-plaid (PyLate's engine, Rust) in its own virtual environment: its wheels need torch
    2.11 (scripts/setup-fast-plaid.sh). The vectors go to it as .npy files; it builds, searches one
    query at a time on the CPU with its default search settings, and reports (eval/peers)."""
    import subprocess

    if not FAST_PLAID_PYTHON.exists():
        raise RuntimeError(f"no {FAST_PLAID_PYTHON}: run scripts/setup-fast-plaid.sh first")
    work = workdir / "fast-plaid"
    work.mkdir(exist_ok=True)
    lengths = []
    with open(work / "docs.f32", "wb") as f:  # raw float32, piece by piece: 100k real-length chunks are 7 GB
        for _, docs in col.chunks():
            for d in docs:
                f.write(np.ascontiguousarray(d, np.float32).tobytes())
                lengths.append(len(d))
    np.save(work / "doc_lengths.npy", np.array(lengths, np.int64))
    np.save(work / "queries.npy", np.concatenate(col.queries).astype(np.float32))
    np.save(work / "query_lengths.npy", np.array([len(q) for q in col.queries], np.int64))
    started = time.perf_counter()
    try:
        done = subprocess.run([str(FAST_PLAID_PYTHON), str(Path(__file__).parent / "fast_plaid_peer.py"),
                               str(work), "--nbits", str(nbits), "--dim", str(col.dim),
                               "--threads", str(torch.get_num_threads())],
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        stage = "searches" if (work / "built.json").exists() else "build"
        shutil.rmtree(work, ignore_errors=True)
        raise RuntimeError(
            f"stopped after {time.perf_counter() - started:.0f} s (--peer-timeout), in its {stage}"
        ) from None
    if done.returncode != 0:
        raise RuntimeError(done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit {done.returncode}")
    out = json.loads((work / "result.json").read_text())
    shutil.rmtree(work, ignore_errors=True)
    return row(f"fast-plaid {out['version']} nbits={nbits} (torch {out['torch']}, CPU)", out["build_s"],
               out["bytes"] / col.n_tokens, out["lat10"], out["res10"], out["res100"], col,
               "its default search settings (n_ivf_probe 8, n_full_scores 4096)")


