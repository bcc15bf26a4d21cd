"""Chunks by model tokens: bounded, overlapping, exact character spans, word edges."""

import pytest
from tokenizers import Tokenizer

from lfm2_retrieval.engine.chunking import Chunker, ChunkingOptions


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


def _tokens(tokenizer, text):
    return len(tokenizer.encode(text, add_special_tokens=False).ids)


def test_no_chunk_is_left_tiny(tokenizer):
    """A text a little longer than one chunk ends in a full window, not an 8-character tail."""
    words = []
    while _tokens(tokenizer, " ".join(words)) <= 40:
        words.append(f"w{len(words)}")
    text = " ".join(words)
    chunks = Chunker(tokenizer, ChunkingOptions(max_tokens=40, overlap=4)).split(text)
    assert len(chunks) == 2 and all(c.n_tokens >= 10 for c in chunks)
    assert chunks[-1].end == len(text) and text[chunks[-1].start:chunks[-1].end] == chunks[-1].text
    assert ChunkingOptions(40, 4).smallest == 10 and ChunkingOptions(40, 4, min_tokens=0).smallest == 0
    with pytest.raises(ValueError):
        ChunkingOptions(40, 4, min_tokens=30)


def test_chunks_follow_sections(tokenizer):
    """Short sections share a chunk; a chunk starts where a section does; a long section is
    windowed on its own; a tiny section joins its neighbour."""
    intro, short_a, short_b = "Intro. ", "Alpha text. ", "Beta text. "
    long = " ".join(f"long{i}" for i in range(60)) + " "
    tiny = "End."
    text = intro + short_a + short_b + long + tiny
    starts = [len(intro), len(intro + short_a), len(intro + short_a + short_b), len(text) - len(tiny)]
    size = _tokens(tokenizer, intro + short_a + short_b) + 4
    assert _tokens(tokenizer, long) > 2 * size and _tokens(tokenizer, tiny) < size // 4
    chunker = Chunker(tokenizer, ChunkingOptions(max_tokens=size, overlap=4))
    chunks = chunker.split(text, starts)
    assert chunks[0].start == 0 and chunks[0].text.endswith("Beta text.")  # intro and short sections packed
    assert chunks[1].start == starts[2]  # the long section starts its own chunk
    assert all(c.n_tokens <= size for c in chunks) and chunks[-1].end == len(text)
    assert chunks[-1].text.endswith("long59 End.") and chunks[-1].n_tokens >= size // 4  # the tiny one joined
    assert all(text[c.start:c.end] == c.text for c in chunks)
    # Without sections the same text is windowed straight through, across the section edge.
    assert "long0" in chunker.split(text)[0].text


def test_long_texts_are_chunked_a_piece_at_a_time(tokenizer):
    """iter_split tokenises at most one piece at a time; its chunks are exact spans of the whole
    text, in order, within the size, covering every word, and a text shorter than a piece gets
    exactly split's chunks."""
    chunker = Chunker(tokenizer, ChunkingOptions(max_tokens=40, overlap=5))
    words = [f"word{i % 97}" for i in range(6000)]
    text = " ".join(words)
    section_starts = [text.index("word50 "), len(text) // 2]
    assert list(chunker.iter_split(text[:3000], [0])) == chunker.split(text[:3000], [0])
    chunks = list(chunker.iter_split(text, section_starts, piece_chars=5000))
    assert all(text[c.start:c.end] == c.text and c.n_tokens <= 40 for c in chunks)
    assert [c.start for c in chunks] == sorted(c.start for c in chunks)
    covered = set()
    for c in chunks:
        covered.update(range(c.start, c.end))
    assert all(i in covered for i, ch in enumerate(text) if not ch.isspace())
    assert max(c.end for c in chunks) == len(text)
