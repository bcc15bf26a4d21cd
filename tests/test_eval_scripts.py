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
    """eval's modules that run as programs (they parse arguments), as dotted names; peers/ holds
    functions, and the one script there runs in fast-plaid's own environment."""
    found = []
    for path in sorted((ROOT / "eval").rglob("*.py")):
        if "ArgumentParser(" in path.read_text(encoding="utf-8") and path.parent.name != "peers":
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


# A tiny configuration of each benchmark, seconds each: {tmp} is a scratch folder, {tiny} a
# random-weight model, {kept} an index kept by bench_index's own tiny run. The flag says whether
# it reads ../shared/data. Four run --help only, since their smallest run is the full data:
# codec_fidelity (SciFact's 5k abstracts encoded, minutes on a fresh machine), tokenizer_coverage
# (tokenizers trained on all of NTREX-128), tune_fusion (the dev suite built and scored) and
# three_signals (both suites built, and SciFact's abstracts embedded by multilingual-e5-small);
# nanobeir exercises the same harness below.
TINY = {
    "eval.bench_index": (["--sizes", "1k", "--no-scifact", "--queries", "4", "--peers", "", "--torch-max-docs", "0"],
                         False),
    "eval.search_stages": (["{kept}/ours-4-synthetic-1k", "--queries", "3", "--truth", "2"], False),
    "eval.bench_encode": (["--quick", "--repeats", "1", "--tiny-docs", "16"], False),
    "eval.bench_metadata": (["--documents", "4", "--chunks-per-document", "3"], False),
    "eval.bench_api": (["--docs", "20", "--seconds", "1"], True),
    "eval.bench_ingest": (["--docs", "10", "--repeats", "1"], True),
    "eval.bench_dense": (["--chunks", "300", "--queries", "3", "--repeats", "1", "--out", "{tmp}/out"], False),
    "eval.bench_teacher": (["--repeats", "1", "--per-file", "1"], True),
    "eval.bench_distributed": (["--docs", "20", "--queries", "3", "--workers", "1", "--no-http"], True),
    "eval.bm25_segments": ([], True),
    "eval.soak": (["--minutes", "0.15", "--searchers", "2", "--seed-documents", "10"], False),
    "eval.average_models": (["{tiny}", "{tiny}", "--weights", "0", "1", "--languages", "en"], True),
    "eval.language_id": (["--out", "{tmp}/out"], True),
    "eval.ntrex_languages": (["--languages", "fra", "--no-e5", "--out", "{tmp}/out"], True),
    "eval.int8_weights": (["--model", "{tiny}", "--docs", "3", "--repeats", "1", "--shapes", "64x6", "--no-quality"],
                          True),
    "eval.nanobeir": (["--model", "{tiny}", "--tasks", "NanoSciFact", "--languages", "en", "--no-e5", "--no-minilm",
                       "--build", "--data", "{tmp}/tasks", "--out", "{tmp}/out"], True),
    "eval.real_documents": (["--model", "{tiny}", "--languages", "en-US", "--pages", "12", "--out", "{tmp}/out"],
                            True),
    "eval.lexical_analysis": (["--model", "{tiny}", "--languages", "en-US", "--pages", "12", "--base", "{tmp}/base",
                               "--rows", "1",
                               "--alphas", "--max-queries", "5", "--out", "{tmp}/out"], True),
    "eval.bench_lexical": (["--index", "{kept}/ours-4-synthetic-1k", "--queries", "0", "--repeats", "1",
                            "--out", "{tmp}/out"], False),
    "eval.bench_cli": (["--model", "{tiny}", "--docs", "{tmp}/docs", "--repeats", "1", "--out", "{tmp}/out"], False),
    "eval.collections.real_collection": (["--per-source", "5", "--out", "{tmp}/out"], True),
    "eval.collections.real_vectors": (["--chunks", "30", "--model", "{tiny}", "--out", "{tmp}/out"], True),
}
HELP_ONLY = {"eval.codec_fidelity", "eval.tokenizer_coverage", "eval.tune_fusion", "eval.three_signals",
             "eval.campaign_curve",  # campaign_curve reads a training run's log: test_training runs it
             "eval.calibrate",  # both suites built and searched; tests/test_calibration.py tests what it fits
             "eval.student_sizes",  # its input is training runs: tests/test_training.py runs it on a tiny one
             # the campaign's teacher cache (hours of E5 on a fresh machine); its pieces are tested below
             "eval.head_probe",
             # 128 NTREX files encoded and the dev suite built; its pieces are tested below
             "eval.language_centering"}


def test_every_benchmark_has_a_tiny_run_or_says_why_not():
    assert set(TINY) | HELP_ONLY == set(scripts())


@pytest.fixture(scope="module")
def kept_run(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    """bench_index's tiny run, once for the module: the folder of indexes it kept, and the run
    (its own tiny-configuration test reads that run instead of making another)."""
    folder = tmp_path_factory.mktemp("kept")
    done = run("eval.bench_index", *TINY["eval.bench_index"][0], "--keep", str(folder))
    assert done.returncode == 0, done.stderr[-3000:]
    return folder, done


def tiny_case(module: str):
    """A TINY module as a test case. Under pytest-xdist (-n 2 --dist loadgroup) those that share
    bench_index's kept run share a worker, so the run happens once; bench_distributed shares
    test_distributed's worker, so two Ray clusters never start at once."""
    group = {"eval.bench_index": "kept", "eval.search_stages": "kept", "eval.bench_lexical": "kept",
             "eval.bench_distributed": "ray"}.get(module)
    return pytest.param(module, marks=[pytest.mark.xdist_group(group)] if group else [])


@pytest.mark.slow
@pytest.mark.parametrize("module", [tiny_case(m) for m in TINY])
def test_tiny_configurations_print_their_table(module, tmp_path, request, pylate_tiny_dir, monkeypatch):
    args, needs_data = TINY[module]
    kept, done = request.getfixturevalue("kept_run") if module in ("eval.bench_index", "eval.search_stages",
                                                                    "eval.bench_lexical") else (None, None)
    if needs_data and not SHARED.is_dir():
        pytest.skip(f"{module} reads ../shared/data, which is absent here")
    if module != "eval.bench_distributed":  # Ray's socket paths must stay short: it keeps /tmp
        monkeypatch.setenv("TMPDIR", str(tmp_path))  # indexes and servers' files go here
    args = [a.format(tmp=tmp_path, tiny=pylate_tiny_dir, kept=kept) for a in args]
    if module == "eval.bench_cli":  # a folder of two documents to index
        (tmp_path / "docs").mkdir()
        (tmp_path / "docs" / "a.md").write_text("# Codes\n\nThe index is compressed into centroid codes.\n")
        (tmp_path / "docs" / "b.md").write_text("# Search\n\nHybrid search fuses MaxSim and BM25.\n")
    if module != "eval.bench_index":  # its run is kept_run's
        done = run(module, *args)
    assert done.returncode == 0, (done.stdout[-2000:], done.stderr[-3000:])
    printed = done.stdout + done.stderr
    assert "|" in printed or "│" in printed or "30 chunks" in printed  # a table (real_vectors: its cache)


def test_an_int8_copy_leaves_the_model_float_and_encodes_close_to_it(pylate_tiny_dir):
    """eval/int8_weights.py quantizes a copy: the model it was given keeps its float layers (the
    float32 rows of its table are that model), and the copy's vectors stay near the float ones."""
    import numpy as np
    import torch

    from eval.int8_weights import int8_encoder
    from lfm2_retrieval import ColBERTEncoder

    encoder = ColBERTEncoder.from_pretrained(str(pylate_tiny_dir))
    quantized = int8_encoder(encoder)
    assert all(type(m) is not torch.nn.Linear for m in quantized.backbone.modules())
    assert any(type(m) is torch.nn.Linear for m in encoder.backbone.modules())
    texts = ["the index is compressed into centroid codes", "hybrid search fuses MaxSim and BM25"]
    for a, b in zip(encoder.encode_documents(texts), quantized.encode_documents(texts)):
        assert a.shape == b.shape and float(np.mean(np.sum(a * b, axis=1))) > 0.9


def test_the_head_probe_reads_what_the_dense_head_reads_and_its_fit_learns(pylate_tiny_dir):
    """eval/head_probe.py: the first block of its features is the mean of the final hidden state
    over the kept tokens (what model/dense_head.py pools), one block a layer follows; and its fit,
    on a target that is a linear map of the features, brings the loss down."""
    import torch

    from eval.head_probe import Features, Head, fit
    from lfm2_retrieval import ColBERTEncoder

    encoder = ColBERTEncoder.from_pretrained(str(pylate_tiny_dir))
    features = Features(encoder)
    texts = ["the index is compressed into centroid codes", "hybrid search fuses MaxSim and BM25 and more"]
    got = features(texts, "document")
    hidden, layers = encoder.backbone.config.hidden_size, len(encoder.backbone.layers)
    assert got.shape == (2, (layers + 1) * hidden)
    inputs, keep = encoder.document_inputs(encoder.tokenizer.documents(texts))
    with torch.inference_mode():
        final = encoder.hidden_states(**inputs).float()
    w = keep.float().unsqueeze(-1)
    expected = ((final * w).sum(1) / w.sum(1)).numpy()
    assert abs(got[:, :hidden] - expected).max() < 1e-4

    torch.manual_seed(0)
    feats = {role: torch.randn(64, 8) for role in ("query", "passage")}
    mapping = torch.randn(8, 4)
    teacher = {role: torch.nn.functional.normalize(f @ mapping, dim=-1) for role, f in feats.items()}
    labels = {role: torch.arange(64) for role in feats}
    head = Head(8, 4, mlp=False)
    before = fit(Head(8, 4, mlp=False), feats, teacher, labels, steps=1, batch=32, lr=0.0, seed=0)
    after = fit(head, feats, teacher, labels, steps=300, batch=32, lr=1e-2, seed=0)
    assert after < 0.5 * before


def test_language_centring_keeps_unit_vectors_and_strength_zero_is_the_model(pylate_tiny_dir):
    """eval/language_centering.py: at strength 0 its retriever ranks exactly as the model's own
    MaxSim; re-centred vectors stay unit length, and a language without a mean takes the mean over
    languages ("*")."""
    import numpy as np

    from eval.language_centering import Centered, center
    from lfm2_retrieval import ColBERTEncoder
    from lfm2_retrieval.evaluation.retrievers import ColBERTRetriever

    encoder = ColBERTEncoder.from_pretrained(str(pylate_tiny_dir))
    corpus = {"a": "the index is compressed into centroid codes", "b": "hybrid search fuses MaxSim and BM25",
              "c": "les documents sont découpés en morceaux"}
    queries = {"q1": "how is the index compressed?", "q2": "what does hybrid search fuse?"}
    dim = encoder.dim
    means = {"tokens": {role: {"*": np.full(dim, 0.1, np.float32), "en": np.full(dim, -0.1, np.float32)}
                        for role in ("query", "document")}}
    plain = ColBERTRetriever(encoder, "plain")
    same = Centered(encoder, "tokens", means, 0.0)
    assert same.search(same.index(corpus), queries, 3) == plain.search(plain.index(corpus), queries, 3)

    vectors = np.random.default_rng(0).standard_normal((5, dim)).astype(np.float32)
    moved = center(vectors, means["tokens"]["query"]["*"], 1.0)
    assert np.allclose(np.linalg.norm(moved, axis=1), 1.0, atol=1e-5)
    shifted = Centered(encoder, "tokens", means, 1.0)
    assert all(np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
               for v in shifted._vectors(list(corpus.values()), "document"))
    french = corpus["c"]  # py3langid: fr, which has no mean here
    raw = encoder.encode_documents([french])[0]
    assert np.allclose(shifted._vectors([french], "document")[0],
                       center(raw, means["tokens"]["document"]["*"], 1.0), atol=1e-5)
