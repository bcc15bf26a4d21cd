import json

import numpy as np
import pytest
from typer.testing import CliRunner

from lfm2_retrieval.cli import app
from lfm2_retrieval.index import MultiVectorIndex

runner = CliRunner()


def test_help_teaches():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    assert "model-info" in result.output and "index-info" in result.output


def test_model_info(pylate_tiny_dir):
    result = runner.invoke(app, ["model-info", str(pylate_tiny_dir), "--json"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    assert info["embedding dim"] == 32 and info["mode"] == "causal"
    assert info["query / document prefix"] == "'[Q] ' / '[D] '"


def test_model_info_on_a_missing_model_fails_clearly(tmp_path):
    result = runner.invoke(app, ["model-info", str(tmp_path / "nowhere")])
    assert result.exit_code == 1 and "not a folder" in result.output


def test_index_info(tmp_path):
    index = MultiVectorIndex.create(tmp_path / "idx", dim=16, nbits=2)
    rng = np.random.default_rng(0)
    index.add([f"d{i}" for i in range(50)], [rng.standard_normal((5, 16)).astype(np.float32) for _ in range(50)])
    result = runner.invoke(app, ["index-info", str(tmp_path / "idx"), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["documents"] == 50
    missing = runner.invoke(app, ["index-info", str(tmp_path / "nope")])
    assert missing.exit_code == 1 and "no index" in missing.output
