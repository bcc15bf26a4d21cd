"""Shared fixtures: random-weight LFM2 ColBERT folders built by PyLate (made once per session)."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

# Tests never reach the network; a hub lookup must fail fast with our own message.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Under pytest-xdist (-n 2) the workers share the cores: each worker and the programs it starts
# get its share of threads, so two torch pools of 2 threads never fight over 2 cores.
if os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") != "1":
    _share = max(1, (os.cpu_count() or 1) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"]))
    os.environ.setdefault("OMP_NUM_THREADS", str(_share))
    os.environ.setdefault("MKL_NUM_THREADS", str(_share))

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def pylate_tiny_dir(tmp_path_factory) -> Path:
    """A tiny causal LFM2 ColBERT folder saved by pylate (random weights)."""
    pytest.importorskip("pylate", reason="pylate is a test extra: run scripts/setup.sh")
    from eval.random_models import build_random_colbert

    return build_random_colbert(tmp_path_factory.mktemp("models") / "tiny-colbert")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA} (it lives beside the repository)")
    return SHARED_DATA


@pytest.fixture()
def fast_tmp(tmp_path):
    """A folder on tmpfs where there is one (the fault-injection tests: each case makes ~40
    fsyncs, costly on a real disk), else pytest's tmp_path."""
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK):
        folder = Path(tempfile.mkdtemp(prefix="lfm2-faults-", dir=shm))
        yield folder
        shutil.rmtree(folder, ignore_errors=True)
    else:
        yield tmp_path
