"""Splitting texts into overlapping chunks of at most N model tokens.

Chunks are counted in the model's own tokens, so each one fits the encoder's document length
and nothing is silently truncated. Boundaries fall between tokens (for byte-level BPE, mostly
before a space), and a chunk is the exact character span of its tokens: `text[start:end]`.
"""

from __future__ import annotations

from dataclasses import dataclass

from tokenizers import Tokenizer

# Tokens the encoder adds around a document (BOS and the "[D] " prefix), plus a margin: a
# chunk re-tokenised on its own can take a token more than it did inside its source text.
DOCUMENT_RESERVED_TOKENS = 4
# How far a chunk edge may move to reach a word boundary.
SNAP_TOKENS = 8


@dataclass(frozen=True)
class ChunkingOptions:
    max_tokens: int = 200
    overlap: int = 20

    def __post_init__(self) -> None:
        if self.max_tokens < 8:
            raise ValueError("chunks need at least 8 tokens")
        if not 0 <= self.overlap < self.max_tokens // 2:
            raise ValueError("overlap must be at least 0 and less than half the chunk size")

    def fitted_to(self, document_length: int) -> "ChunkingOptions":
        """These options, with chunks shrunk to what the model reads of a document."""
        limit = max(8, document_length - DOCUMENT_RESERVED_TOKENS)
        if self.max_tokens <= limit:
            return self
        return ChunkingOptions(limit, min(self.overlap, limit // 2 - 1))


@dataclass(frozen=True)
class Chunk:
    text: str
    start: int  # character offsets into the source text
    end: int
    n_tokens: int


class Chunker:
    def __init__(self, tokenizer: Tokenizer, options: ChunkingOptions) -> None:
        # A private copy: truncation and padding are tokenizer state.
        self.tokenizer = Tokenizer.from_str(tokenizer.to_str())
        self.tokenizer.no_truncation()
        self.tokenizer.no_padding()
        self.options = options

    def split(self, text: str) -> list[Chunk]:
        if not text.strip():
            return []
        offsets = self.tokenizer.encode(text, add_special_tokens=False).offsets
        if not offsets:
            return []
        size, overlap = self.options.max_tokens, self.options.overlap
        n = len(offsets)
        starts_word = [i == 0 or _word_boundary(text, offsets[i][0]) for i in range(n)]
        chunks, first = [], 0
        while True:
            last = min(first + size, n) - 1
            if last < n - 1:  # end before a word start if one is near (BPE pieces split words)
                for i in range(last, max(first + size // 2, last - SNAP_TOKENS), -1):
                    if starts_word[i + 1]:
                        last = i
                        break
            start, end = offsets[first][0], offsets[last][1]
            span = text[start:end]
            if span.strip():
                lead, trail = len(span) - len(span.lstrip()), len(span) - len(span.rstrip())
                chunks.append(Chunk(span.strip(), start + lead, end - trail, last - first + 1))
            if last == n - 1:
                return chunks
            # The next chunk starts `overlap` tokens back, moved to a word start: forward within
            # the overlap (it never starts after this chunk's end), else a little further back.
            nxt = last + 1 - overlap
            ahead = [i for i in range(nxt, last + 1) if starts_word[i]]
            behind = [i for i in range(nxt - 1, max(first, nxt - SNAP_TOKENS - 1), -1) if starts_word[i]]
            nxt = ahead[0] if ahead else behind[0] if behind else nxt
            first = max(nxt, first + 1)


def _word_boundary(text: str, offset: int) -> bool:
    """A token starting here starts a word: it begins with a space or follows one."""
    return offset >= len(text) or text[offset].isspace() or text[offset - 1].isspace()
