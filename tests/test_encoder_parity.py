"""ColBERTEncoder gives the same token ids and vectors as pylate.models.ColBERT.encode."""

import numpy as np
import pytest
import torch

from lfm2_retrieval import ColBERTEncoder

pytestmark = pytest.mark.slow  # checks parity against pylate

pylate_models = pytest.importorskip("pylate.models")

QUERIES = ["What is a fox?", "  日本語のテキスト検索  ", "", "very long query " * 40,
           "¿Dónde está la biblioteca?", "كيف حالك", "[Q] literal prefix text", "a"]
DOCUMENTS = ["The quick brown fox jumps over the lazy dog.", "Le renard brun saute ! " * 30,
             "日本語のテキスト検索です。", "", "a, b. c; d! (e) [f] {g}", "   padded with spaces   ",
             "한국어 문장도 검색할 수 있어야 합니다.", "x"]


@pytest.fixture(scope="module")
def both(pylate_tiny_dir):
    return pylate_models.ColBERT(str(pylate_tiny_dir), device="cpu"), ColBERTEncoder.from_pretrained(pylate_tiny_dir)


def assert_same_vectors(expected, got, tol=1e-4):
    assert len(expected) == len(got)
    for e, g in zip(expected, got):
        assert e.shape == g.shape
        assert np.abs(e - g).max() <= tol


def test_query_token_ids_match(both):
    reference, ours = both
    expected = reference.tokenize(QUERIES, is_query=True)
    batch = ours.tokenizer.queries(QUERIES)
    np.testing.assert_array_equal(expected["input_ids"].numpy(), batch.input_ids)
    np.testing.assert_array_equal(expected["attention_mask"].numpy(), batch.attention_mask)


def test_document_token_ids_match(both):
    reference, ours = both
    for text, ids in zip(DOCUMENTS, ours.tokenizer.documents(DOCUMENTS)):
        expected = reference.tokenize([text], is_query=False)["input_ids"][0].numpy()
        np.testing.assert_array_equal(expected, ids)


@pytest.mark.parametrize("batch_size", [2, 5])
def test_query_vectors_match(both, batch_size):
    reference, ours = both
    # pylate masks expansion tokens only in batches of two or more (see lfm2_core/model.py);
    # batch sizes that leave no single-query batch compare like with like.
    expected = reference.encode(QUERIES, is_query=True, batch_size=4, convert_to_numpy=True)
    assert_same_vectors(expected, ours.encode_queries(QUERIES, batch_size=batch_size))


@pytest.mark.parametrize("batch_size, max_tokens", [(3, 16384), (64, 64), (1, 16384)])
def test_document_vectors_match(both, batch_size, max_tokens):
    reference, ours = both
    expected = reference.encode(DOCUMENTS, is_query=False, batch_size=3, convert_to_numpy=True)
    got = ours.encode_documents(DOCUMENTS, batch_size=batch_size, max_tokens=max_tokens)
    assert_same_vectors(expected, got)
    skip = set(ours.tokenizer.skiplist_ids.tolist())
    ids = ours.tokenizer.documents(DOCUMENTS)
    assert all(len(g) == sum(t not in skip for t in i) for g, i in zip(got, ids))


def test_vectors_are_unit_length_and_of_the_model_dimension(both):
    _, ours = both
    for vecs in ours.encode_queries(QUERIES[:2]) + ours.encode_documents(DOCUMENTS[:2]):
        assert vecs.shape[1] == ours.dim == 32 and vecs.dtype == np.float32
        np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)


def test_streaming_equals_one_shot(both):
    _, ours = both
    streamed = list(ours.iter_encode_documents(iter(DOCUMENTS * 3), chunk_size=5))
    assert_same_vectors(ours.encode_documents(DOCUMENTS * 3), streamed, tol=1e-6)


def test_saved_folder_loads_in_pylate_with_the_same_outputs(both, tmp_path):
    _, ours = both
    ours.save(tmp_path / "copy")
    reloaded_pylate = pylate_models.ColBERT(str(tmp_path / "copy"), device="cpu")
    reloaded_ours = ColBERTEncoder.from_pretrained(tmp_path / "copy")
    expected = reloaded_pylate.encode(DOCUMENTS, is_query=False, batch_size=4)
    assert_same_vectors(expected, ours.encode_documents(DOCUMENTS))
    assert_same_vectors(expected, reloaded_ours.encode_documents(DOCUMENTS), tol=1e-6)
    assert reloaded_ours.fingerprint == ours.fingerprint


@pytest.mark.parametrize("compute_dtype", ["bfloat16", "float32", "auto"])
def test_bf16_weights_stay_close_to_fp32(pylate_tiny_dir, compute_dtype):
    fp32 = ColBERTEncoder.from_pretrained(pylate_tiny_dir)
    bf16 = ColBERTEncoder.from_pretrained(pylate_tiny_dir, dtype="bfloat16", compute_dtype=compute_dtype)
    assert bf16.dtype == torch.bfloat16
    for a, b in zip(fp32.encode_documents(DOCUMENTS) + fp32.encode_queries(QUERIES),
                    bf16.encode_documents(DOCUMENTS) + bf16.encode_queries(QUERIES)):
        assert a.shape == b.shape
        assert (a * b).sum(axis=1).min() > 0.98


def test_native_bf16_math_matches_pylate_in_bf16(pylate_tiny_dir):
    reference = pylate_models.ColBERT(str(pylate_tiny_dir), device="cpu", model_kwargs={"dtype": torch.bfloat16})
    ours = ColBERTEncoder.from_pretrained(pylate_tiny_dir, dtype="bfloat16", compute_dtype="bfloat16")
    expected = reference.encode(DOCUMENTS, is_query=False, batch_size=4)
    for e, g in zip(expected, ours.encode_documents(DOCUMENTS)):
        assert (np.asarray(e, dtype=np.float32) * g).sum(axis=1).min() > 0.99


@pytest.mark.parametrize("settings", [
    {"do_query_expansion": False},
    {"attend_to_expansion_tokens": True},
    {"query_length": 8, "document_length": 12},
    {"query_prefix": "[Q] ", "document_prefix": "[D] ", "skiplist_words": ["a", "!"]},
])
def test_colbert_settings_match_pylate(tmp_path_factory, settings):
    from eval.random_models import build_random_colbert

    folder = build_random_colbert(tmp_path_factory.mktemp("variant") / "m", colbert_kwargs=settings)
    reference = pylate_models.ColBERT(str(folder), device="cpu")
    ours = ColBERTEncoder.from_pretrained(folder)
    assert_same_vectors(reference.encode(QUERIES, is_query=True, batch_size=4), ours.encode_queries(QUERIES))
    assert_same_vectors(reference.encode(DOCUMENTS, is_query=False, batch_size=4), ours.encode_documents(DOCUMENTS))


def test_a_plain_lfm2_checkpoint_becomes_the_colbert_model_pylate_makes(pylate_tiny_dir, tmp_path):
    """from_backbone on the plain LFM2 folder PyLate started from: the same tokens, the same
    backbone weights (PyLate draws its own values for the two new prefix rows), the same
    projection shape; and the result saves as a folder both load."""
    plain = pylate_tiny_dir.with_name(pylate_tiny_dir.name + "-base")  # made by build_random_colbert
    reference = pylate_models.ColBERT(str(pylate_tiny_dir), device="cpu")
    ours = ColBERTEncoder.from_backbone(plain, embedding_dim=reference[1].get_sentence_embedding_dimension())
    np.testing.assert_array_equal(reference.tokenize(QUERIES, is_query=True)["input_ids"].numpy(),
                                  ours.tokenizer.queries(QUERIES).input_ids)
    for text, ids in zip(DOCUMENTS, ours.tokenizer.documents(DOCUMENTS)):
        np.testing.assert_array_equal(reference.tokenize([text], is_query=False)["input_ids"][0].numpy(), ids)
    converted = ColBERTEncoder.from_pretrained(pylate_tiny_dir)
    theirs, mine = converted.backbone.state_dict(), ours.backbone.state_dict()
    assert theirs.keys() == mine.keys()
    n_old = theirs["embed_tokens.weight"].shape[0] - 2
    for name in theirs:
        rows = slice(0, n_old) if name == "embed_tokens.weight" else slice(None)
        torch.testing.assert_close(mine[name][rows], theirs[name][rows])
    assert ours.dense[0].linear.weight.shape == converted.dense[0].linear.weight.shape
    ours.save(tmp_path / "converted")
    again = pylate_models.ColBERT(str(tmp_path / "converted"), device="cpu")
    assert_same_vectors(again.encode(DOCUMENTS, is_query=False), ours.encode_documents(DOCUMENTS))
    with pytest.raises(ValueError, match="already a ColBERT model folder"):
        ColBERTEncoder.from_backbone(pylate_tiny_dir)


def test_from_pretrained_without_a_name_loads_the_default_model(monkeypatch):
    """As the CLI does: $LFM2_SEARCH_MODEL when set, else the embedded model (once a TypeError)."""
    from pathlib import Path

    from lfm2_retrieval.model.locations import EMBEDDED_MODEL_DIR, MODEL_ENV

    monkeypatch.delenv(MODEL_ENV, raising=False)
    model = ColBERTEncoder.from_pretrained()
    assert Path(model.source_dir).resolve() == EMBEDDED_MODEL_DIR.resolve()
    assert len(model.encode_queries(["rotate keys"])) == 1
