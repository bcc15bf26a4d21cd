"""The query path without torch (model/numpy_queries.py) equals the torch encoder: the same
vectors for every query, alone or in a batch, and the same fingerprint, for the embedded model
(bidirectional, no query expansion) and random causal ones with expansion; what it cannot read
exactly it refuses, so that the engine uses torch."""

import json

import numpy as np
import pytest

from lfm2_retrieval import ColBERTEncoder
from lfm2_retrieval.model.locations import default_model as default_model_name
from lfm2_retrieval.model.numpy_queries import NumpyQueryEncoder, Unsupported

QUERIES = ["What is a fox?", "  日本語のテキスト検索  ", "", "very long query " * 40, "¿Dónde está la biblioteca?",
           "كيف حالك", "[Q] literal prefix text", "a", "how is the index compressed?"]


def default_model():
    from pathlib import Path

    return Path(default_model_name())


def assert_same(folder, tol=1e-5):
    torch_encoder, numpy_encoder = ColBERTEncoder.from_pretrained(folder), NumpyQueryEncoder.from_pretrained(folder)
    assert numpy_encoder.fingerprint == torch_encoder.fingerprint
    assert numpy_encoder.dim == torch_encoder.dim
    got = numpy_encoder.encode_queries(QUERIES)
    for batch_size in (1, 4):  # a query's vectors do not depend on the other queries of its batch
        expected = torch_encoder.encode_queries(QUERIES, batch_size=batch_size)
        for e, g in zip(expected, got, strict=True):
            assert e.shape == g.shape and g.dtype == np.float32
            assert np.abs(e - g).max() <= tol


def test_the_embedded_model():
    folder = default_model()
    assert json.loads((folder / "config.json").read_text())["bidirectional"]  # the case batches used to leak into
    assert_same(folder)


@pytest.mark.parametrize("settings", [{}, {"do_query_expansion": False}, {"attend_to_expansion_tokens": True},
                                      {"query_prefix": "[Q] ", "query_length": 8}])
def test_random_models_with_and_without_query_expansion(tmp_path_factory, settings):
    from eval.random_models import build_random_colbert

    assert_same(build_random_colbert(tmp_path_factory.mktemp("variant") / "m", colbert_kwargs=settings))


def test_a_bidirectional_model_with_query_expansion(tmp_path):
    """Expansion tokens are inputs of a bidirectional model's convolutions (not its attention)."""
    import shutil

    folder = tmp_path / "m"
    shutil.copytree(default_model(), folder)
    settings = json.loads((folder / "config_sentence_transformers.json").read_text())
    (folder / "config_sentence_transformers.json").write_text(json.dumps({**settings, "do_query_expansion": True}))
    assert_same(folder)


def test_what_it_cannot_read_exactly_it_refuses(tmp_path):
    import shutil

    folder = tmp_path / "m"
    shutil.copytree(default_model(), folder)
    dense = json.loads((folder / "1_Dense" / "config.json").read_text())
    (folder / "1_Dense" / "config.json").write_text(json.dumps({**dense, "activation_function": "torch.nn.Tanh"}))
    with pytest.raises(Unsupported, match="Tanh"):
        NumpyQueryEncoder.from_pretrained(folder)
    with pytest.raises(Unsupported, match="not a local ColBERT folder"):
        NumpyQueryEncoder.from_pretrained(tmp_path / "missing")


SEARCH_WITHOUT_TORCH = """
import json, sys
from typer.testing import CliRunner
from lfm2_retrieval.cli import app
answers = {}
for mode in ("semantic", "hybrid"):
    done = CliRunner().invoke(app, ["search", "where do rivers run?", "-i", sys.argv[1], "--mode", mode, "--json"])
    assert done.exit_code == 0, done.output
    answers[mode] = [(h["id"], h["score"]) for h in json.loads(done.stdout)["results"][0]["hits"]]
print(json.dumps({"torch": "torch" in sys.modules, "answers": answers}))
"""


def test_a_search_from_the_shell_never_loads_torch_and_ranks_as_torch_does(tmp_path, pylate_tiny_dir):
    """`lfm2-search search` encodes its query in numpy: torch (1-1.6 s of a 2-3.5 s search on
    2 cores) is never imported, and the hits and scores are those of the engine with torch."""
    import subprocess
    import sys

    from lfm2_retrieval.engine import SearchEngine, TextDocument

    engine = SearchEngine.open(tmp_path / "idx", model=str(pylate_tiny_dir), create=True)
    topics = ["rivers run to the sea", "volcanoes erupt when magma rises", "tides follow the moon",
              "glaciers carve valleys", "the harbour keeps its lighthouse"]
    engine.upsert([TextDocument(f"d{i}", f"{t}, page {i}. " * (1 + i % 3)) for i, t in enumerate(topics * 8)])
    expected = {mode: [(h.id, h.score) for h in engine.search(["where do rivers run?"], k=10, mode=mode)[0]]
                for mode in ("semantic", "hybrid")}
    engine.close()
    done = subprocess.run([sys.executable, "-c", SEARCH_WITHOUT_TORCH, str(tmp_path / "idx")], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    got = json.loads(done.stdout.strip().splitlines()[-1])
    assert got["torch"] is False
    for mode, hits in expected.items():
        assert [i for i, _ in got["answers"][mode]] == [i for i, _ in hits]
        np.testing.assert_allclose([s for _, s in got["answers"][mode]], [s for _, s in hits], atol=1e-4)


def test_an_index_whose_model_numpy_cannot_read_is_searched_with_torch(tmp_path):
    import shutil

    from lfm2_retrieval.engine import SearchEngine, TextDocument

    folder = tmp_path / "m"
    shutil.copytree(default_model(), folder)
    dense = json.loads((folder / "1_Dense" / "config.json").read_text())
    (folder / "1_Dense" / "config.json").write_text(json.dumps({**dense, "activation_function": "torch.nn.Tanh"}))
    engine = SearchEngine.open(tmp_path / "idx", model=str(folder), create=True)
    engine.upsert([TextDocument("a", "rivers run to the sea"), TextDocument("b", "tides follow the moon")])
    engine.close()
    reopened = SearchEngine.open(tmp_path / "idx", model=str(folder))
    reopened.queries_without_torch = True
    assert reopened.search(["the sea"], k=1, mode="semantic")[0][0].id == "a#0"
    assert reopened.queries_without_torch is False and reopened._encoder is not None  # torch took over
