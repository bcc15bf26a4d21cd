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
