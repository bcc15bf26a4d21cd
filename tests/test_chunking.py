"""Chunks by model tokens: bounded, overlapping, exact character spans, word edges."""

import pytest
from tokenizers import Tokenizer

from lfm2_retrieval.chunking import Chunker, ChunkingOptions


@pytest.fixture(scope="module")
def tokenizer(pylate_tiny_dir) -> Tokenizer:
    return Tokenizer.from_file(str(pylate_tiny_dir / "tokenizer.json"))


def test_chunks_are_bounded_exact_spans(tokenizer):
    text = " ".join(f"word{i} is followed by more words" for i in range(300))
    chunker = Chunker(tokenizer, ChunkingOptions(max_tokens=40, overlap=8))
    chunks = chunker.split(text)
    assert len(chunks) > 5
    for c in chunks:
        assert text[c.start:c.end] == c.text
        assert 0 < c.n_tokens <= 40
    # Consecutive chunks overlap (or touch): nothing is lost between them.
    for a, b in zip(chunks, chunks[1:]):
        assert b.start <= a.end
    assert chunks[0].start == 0 and chunks[-1].end == len(text.rstrip())


def test_edges_fall_on_word_boundaries(tokenizer):
    text = " ".join(["internationalization"] * 200)
    chunks = Chunker(tokenizer, ChunkingOptions(max_tokens=30, overlap=6)).split(text)
    for c in chunks:
        assert c.text.startswith("internationalization") and c.text.endswith("internationalization")


def test_text_without_spaces_still_splits(tokenizer):
    text = "日本語のテキストには空白がありません。" * 40
    chunks = Chunker(tokenizer, ChunkingOptions(max_tokens=32, overlap=4)).split(text)
    assert len(chunks) > 3 and all(c.n_tokens <= 32 for c in chunks)
    assert "".join(c.text for c in chunks).replace("。", "") != ""


def test_short_and_empty(tokenizer):
    chunker = Chunker(tokenizer, ChunkingOptions())
    assert chunker.split("") == [] and chunker.split("  \n ") == []
    (only,) = chunker.split("  short text  ")
    assert only.text == "short text" and (only.start, only.end) == (2, 12)


def test_options_validate_and_fit_the_model():
    with pytest.raises(ValueError):
        ChunkingOptions(max_tokens=4)
    with pytest.raises(ValueError):
        ChunkingOptions(max_tokens=100, overlap=60)
    fitted = ChunkingOptions(300, 40).fitted_to(180)
    assert fitted.max_tokens == 176 and fitted.overlap == 40
    assert ChunkingOptions(100, 10).fitted_to(180) == ChunkingOptions(100, 10)
