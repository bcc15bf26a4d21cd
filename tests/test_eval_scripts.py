"""Every benchmark under eval/ runs as a module from the repository root (`python -m eval.NAME`):
its --help, and a tiny configuration of those with size knobs, so a broken import (as
bench_encode's of a helper that lived in tests/ once was) fails here, not in a reader's shell."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"


def scripts() -> list[str]:
    """eval's modules that run as programs (a __main__ block), as dotted names."""
    found = []
    for path in sorted((ROOT / "eval").rglob("*.py")):
        if "__main__" in path.read_text(encoding="utf-8") and path.parent.name != "peers":
            found.append(".".join(path.relative_to(ROOT).with_suffix("").parts))
    return found


def run(module: str, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)


def test_every_benchmark_is_found():
    assert {"eval.bench_index", "eval.bench_encode", "eval.nanobeir", "eval.soak",
            "eval.collections.real_vectors"} <= set(scripts())


@pytest.mark.parametrize("module", scripts())
def test_every_benchmark_explains_itself(module):
    done = run(module, "--help", timeout=120)
    assert done.returncode == 0 and "usage:" in done.stdout, done.stderr[-2000:]


# Size knobs small enough for seconds; None: needs ../shared/data.
TINY = {
    "eval.bench_index": (["--sizes", "1k", "--no-scifact", "--queries", "4", "--peers", "", "--torch-max-docs", "0"],
                         False),
    "eval.bench_encode": (["--quick", "--repeats", "1", "--tiny-docs", "16"], False),
    "eval.bench_metadata": (["--documents", "4", "--chunks-per-document", "3"], False),
    "eval.bench_api": (["--docs", "20", "--seconds", "1"], True),
    "eval.bench_ingest": (["--docs", "10", "--repeats", "1"], True),
    "eval.bench_teacher": (["--repeats", "1", "--per-file", "2"], True),
    "eval.bm25_segments": ([], True),
    "eval.soak": (["--minutes", "0.15", "--searchers", "2", "--seed-documents", "10"], False),
}


@pytest.mark.slow
@pytest.mark.parametrize("module", sorted(TINY))
def test_tiny_configurations_print_their_table(module, tmp_path, monkeypatch):
    args, needs_data = TINY[module]
    if needs_data and not SHARED.is_dir():
        pytest.skip(f"{module} reads ../shared/data, which is absent here")
    monkeypatch.setenv("TMPDIR", str(tmp_path))  # indexes and servers' files go here
    done = run(module, *args)
    assert done.returncode == 0, (done.stdout[-2000:], done.stderr[-3000:])
    assert "|" in done.stdout or "│" in done.stdout  # a table
