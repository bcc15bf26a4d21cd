"""Turning queries and documents into token ids exactly as PyLate does, with `tokenizers` alone.

PyLate's recipe (pylate.models.ColBERT.tokenize), reproduced step by step:
1. strip the text (and lower-case it when the folder says `do_lower_case`);
2. tokenise with special tokens (LFM2 prepends BOS), truncated to `length - 1`;
3. queries with expansion are padded to `length - 1` with the pad token, which PyLate sets to
   the tokenizer's MASK token, else its EOS token;
4. insert the prefix token (`[Q] ` / `[D] `) at position 1, right after BOS;
5. expansion tokens get attention 0 unless `attend_to_expansion_tokens`.
Documents later drop skiplist tokens (punctuation) and padding from their vectors.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

from .config import ColBERTConfig


@dataclass
class TokenBatch:
    """Texts as the model reads them: right-padded ids, what may be attended to, what is kept."""

    input_ids: np.ndarray  # [N, L] int64
    attention_mask: np.ndarray  # [N, L], 1 where a token may be attended to
    keep: np.ndarray  # [N, L], 1 where the token's vector is part of the text's vectors


def pad(
    sequences: list[np.ndarray] | list[list[int]], pad_id: int, width: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(ids, mask): the sequences right-padded with `pad_id` to `width` (default: the longest),
    and 1 where a real token is. The one padding routine of inference and training."""
    width = max((len(s) for s in sequences), default=0) if width is None else width
    ids = np.full((len(sequences), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(sequences), width), dtype=np.int64)
    for row, seq in enumerate(sequences):
        ids[row, : len(seq)] = seq
        mask[row, : len(seq)] = 1
    return ids, mask


def _token_content(value: object) -> str | None:
    if isinstance(value, dict):
        return value.get("content")
    return value if isinstance(value, str) else None


def token_words(text: str, offsets: list[tuple[int, int]], special: list[int]) -> list[int | None]:
    """The whitespace-separated word of `text` each token belongs to (by the first character of
    its span; None for special tokens and tokens of whitespace alone)."""
    word_at = np.full(len(text) + 1, -1, dtype=np.int64)
    for n, match in enumerate(re.finditer(r"\S+", text)):
        word_at[match.start(): match.end()] = n
    words: list[int | None] = []
    for (start, end), is_special in zip(offsets, special):
        w = -1 if is_special or end <= start else int(word_at[min(start, len(text))])
        if w < 0 and not is_special and end > start:  # a span that starts on a space: its first word
            inner = word_at[start:end]
            w = int(inner[inner >= 0][0]) if (inner >= 0).any() else -1
        words.append(None if w < 0 else w)
    return words


class ColBERTTokenizer:
    def __init__(self, tokenizer: Tokenizer, config: ColBERTConfig, special_tokens: dict[str, str | None]) -> None:
        self.tokenizer = tokenizer
        self.config = config
        # One configured copy per kind of text: truncation is tokenizer state, and sharing
        # one tokenizer between threads that set it differently would race.
        self._truncating: dict[int, Tokenizer] = {}
        self.query_prefix_id = self._prefix_id(config.query_prefix)
        self.document_prefix_id = self._prefix_id(config.document_prefix)
        self.pad_id = self._pad_id(special_tokens)
        self.skiplist_ids = np.array(
            sorted({i for w in config.skiplist_words if (i := tokenizer.token_to_id(w)) is not None}),
            dtype=np.int64,
        )

    @classmethod
    def from_folder(cls, model_dir: str | Path, config: ColBERTConfig,
                    add_prefixes: bool = False) -> "ColBERTTokenizer":
        """The tokenizer of a model folder. `add_prefixes` adds the query and document
        prefixes as tokens where they are missing, as PyLate does for a plain checkpoint."""
        model_dir = Path(model_dir)
        tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        if add_prefixes:
            missing = [p for p in (config.query_prefix, config.document_prefix)
                       if p and tokenizer.token_to_id(p) is None]
            tokenizer.add_tokens(missing)
        special: dict[str, str | None] = {}
        for name in ("special_tokens_map.json", "tokenizer_config.json"):
            path = model_dir / name
            if path.exists():
                raw = json.loads(path.read_text(encoding="utf-8"))
                for key in ("mask_token", "eos_token", "pad_token", "bos_token"):
                    special.setdefault(key, _token_content(raw.get(key)))
        return cls(tokenizer, config, special)

    def _prefix_id(self, prefix: str) -> int | None:
        if not prefix:
            return None
        token_id = self.tokenizer.token_to_id(prefix)
        if token_id is None:
            raise ValueError(
                f"the prefix {prefix!r} is not a token of this tokenizer; PyLate adds it when it "
                "creates a ColBERT model, so this folder was not made that way"
            )
        return token_id

    def _pad_id(self, special: dict[str, str | None]) -> int:
        # PyLate: the MASK token if there is one (BERT-like), else EOS (LLMs), else PAD.
        for key in ("mask_token", "eos_token", "pad_token"):
            token = special.get(key)
            if token is not None and (token_id := self.tokenizer.token_to_id(token)) is not None:
                return token_id
        raise ValueError("the tokenizer has no MASK, EOS or PAD token to pad queries with")

    def _tokenize(self, texts: list[str], max_length: int, prefix_id: int | None) -> list[list[int]]:
        texts = self._prepared(texts)
        budget = max_length - 1 if prefix_id is not None else max_length
        encodings = self._truncating_tokenizer(budget).encode_batch(texts, add_special_tokens=True)
        ids = [e.ids for e in encodings]
        if prefix_id is None:
            return ids
        return [seq[:1] + [prefix_id] + seq[1:] for seq in ids]

    def word_ids(self, texts: list[str], role: str) -> list[list[int | None]]:
        """For each position of what `queries` (role "query", before padding) or `documents`
        (role "document") makes of each text, the whitespace-separated word of the text it reads
        (token_words: by its first character); None for BOS, the prefix and other special tokens
        (training/word_distillation.py). Whatever the tokenizer's own pre-tokenisation."""
        if role == "query":
            budget, prefix_id = self.config.query_length, self.query_prefix_id
        else:
            budget, prefix_id = self.config.document_length, self.document_prefix_id
        budget = budget - 1 if prefix_id is not None else budget
        prepared = self._prepared(texts)
        out = []
        for text, encoding in zip(prepared, self._truncating_tokenizer(budget).encode_batch(prepared)):
            words = token_words(text, encoding.offsets, encoding.special_tokens_mask)
            out.append(words if prefix_id is None else words[:1] + [None] + words[1:])
        return out

    def word_counts(self, texts: list[str]) -> list[int]:
        """How many whitespace-separated words each text has, as `word_ids` counts them."""
        return [len(t.split()) for t in self._prepared(texts)]

    def _prepared(self, texts: list[str]) -> list[str]:
        texts = [str(t).strip() for t in texts]
        return [t.lower() for t in texts] if self.config.do_lower_case else texts

    def _truncating_tokenizer(self, max_length: int) -> Tokenizer:
        tok = self._truncating.get(max_length)
        if tok is None:
            tok = Tokenizer.from_str(self.tokenizer.to_str())
            tok.no_padding()
            tok.enable_truncation(max_length=max_length)
            self._truncating[max_length] = tok
        return tok

    def documents(self, texts: list[str]) -> list[np.ndarray]:
        """Token ids of each document (BOS, prefix, tokens), truncated to `document_length`."""
        ids = self._tokenize(texts, self.config.document_length, self.document_prefix_id)
        return [np.asarray(seq, dtype=np.int64) for seq in ids]

    def document_keep_mask(self, input_ids: np.ndarray) -> np.ndarray:
        """True where a document token keeps its vector (not in the skiplist)."""
        return ~np.isin(input_ids, self.skiplist_ids)

    def document_batch(self, token_ids: list[np.ndarray]) -> TokenBatch:
        """Documents' token ids (from `documents`) padded into one batch; padding and skiplist
        tokens are not kept."""
        ids, mask = pad(token_ids, self.pad_id)
        return TokenBatch(ids, mask, (mask.astype(bool) & self.document_keep_mask(ids)).astype(np.int64))

    def queries(self, texts: list[str]) -> TokenBatch:
        cfg = self.config
        if cfg.do_query_expansion:
            budget = cfg.query_length - (1 if self.query_prefix_id is not None else 0)
            padded, mask = pad(self._tokenize(texts, budget, None), self.pad_id, width=budget)
            if self.query_prefix_id is not None:
                padded = np.insert(padded, 1, self.query_prefix_id, axis=1)
                mask = np.insert(mask, 1, 1, axis=1)
            keep = np.ones_like(mask)
            if cfg.attend_to_expansion_tokens:
                mask = np.ones_like(mask)
            return TokenBatch(padded, mask, keep)
        padded, mask = pad(self._tokenize(texts, cfg.query_length, self.query_prefix_id), self.pad_id)
        return TokenBatch(padded, mask, mask.copy())
