"""Splitting texts into overlapping chunks of at most N model tokens.

Chunks are counted in the model's own tokens, so each one fits the encoder's document length
and nothing is silently truncated. Boundaries fall between tokens (for byte-level BPE, mostly
before a space), and a chunk is the exact character span of its tokens: `text[start:end]`.

Given section starts (a Markdown or HTML heading), chunks follow them: consecutive short
sections share a chunk, a chunk never begins inside a section it could have begun with, and
only a section longer than a chunk is split inside. No chunk is left smaller than `min_tokens`
when its text has more: a short section joins its neighbour, and a short last window takes more
of the text before it (a larger overlap) instead of standing alone, where it would match any
query by its few words.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from tokenizers import Tokenizer

from ..errors import InvalidRequestError

# Tokens the encoder adds around a document (BOS and the "[D] " prefix), plus a margin: a
# chunk re-tokenised on its own can take a token more than it did inside its source text.
DOCUMENT_RESERVED_TOKENS = 4
# How far a chunk edge may move to reach a word boundary.
SNAP_TOKENS = 8
# Long texts are chunked a piece at a time (Chunker.iter_split): tokenising a 200 MB line at
# once took gigabytes of offsets (a Python tuple per token: about 100 bytes). At a piece's edge,
# every 30k tokens or so, two chunks do not overlap.
PIECE_CHARS = 1 << 17


@dataclass(frozen=True)
class ChunkingOptions:
    max_tokens: int = 200
    overlap: int = 20
    min_tokens: int | None = None  # None: a quarter of max_tokens

    def __post_init__(self) -> None:
        if self.max_tokens < 8:
            raise InvalidRequestError("chunks need at least 8 tokens")
        if not 0 <= self.overlap < self.max_tokens // 2:
            raise InvalidRequestError("overlap must be at least 0 and less than half the chunk size")
        if self.min_tokens is not None and not 0 <= self.min_tokens <= self.max_tokens // 2:
            raise InvalidRequestError("min_tokens must be at least 0 and at most half the chunk size")

    @property
    def smallest(self) -> int:
        return self.max_tokens // 4 if self.min_tokens is None else self.min_tokens

    def fitted_to(self, document_length: int) -> "ChunkingOptions":
        """These options, with chunks shrunk to what the model reads of a document."""
        limit = max(8, document_length - DOCUMENT_RESERVED_TOKENS)
        if self.max_tokens <= limit:
            return self
        smallest = None if self.min_tokens is None else min(self.min_tokens, limit // 2)
        return ChunkingOptions(limit, min(self.overlap, limit // 2 - 1), smallest)


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

    def iter_split(self, text: str, section_starts: Sequence[int] = (),
                   piece_chars: int = PIECE_CHARS) -> Iterator[Chunk]:
        """The chunks of `split`, a piece of the text at a time: memory stays that of one piece
        (128k characters) however long the text. Pieces end at a section start where one is
        near, else at a space; a text shorter than a piece is chunked exactly as `split` does."""
        starts = sorted(set(section_starts))
        begin = 0
        while begin < len(text):
            end = _piece_end(text, begin, piece_chars, starts)
            local = [s - begin for s in starts if begin < s < end]
            for chunk in self.split(text[begin:end], local):
                yield Chunk(chunk.text, chunk.start + begin, chunk.end + begin, chunk.n_tokens)
            begin = end

    def split(self, text: str, section_starts: Sequence[int] = ()) -> list[Chunk]:
        """Chunks of `text`; `section_starts` are character offsets where sections begin."""
        if not text.strip():
            return []
        offsets = self.tokenizer.encode(text, add_special_tokens=False).offsets
        if not offsets:
            return []
        n = len(offsets)
        starts_word = [i == 0 or _word_boundary(text, offsets[i][0]) for i in range(n)]
        chunks: list[Chunk] = []
        for first, end in self._packed_sections(offsets, section_starts):
            for a, b in self._windows(first, end, starts_word):
                start, stop = offsets[a][0], offsets[b][1]
                span = text[start:stop]
                if span.strip():
                    lead, trail = len(span) - len(span.lstrip()), len(span) - len(span.rstrip())
                    chunks.append(Chunk(span.strip(), start + lead, stop - trail, b - a + 1))
        return chunks

    def _packed_sections(self, offsets: list[tuple[int, int]], section_starts: Sequence[int]) -> list[tuple[int, int]]:
        """Token ranges [first, end) to window: sections packed together while they fit in a
        chunk; a section shorter than min_tokens that does not fit joins the next one."""
        n, size, smallest = len(offsets), self.options.max_tokens, self.options.smallest
        ends = [o[1] for o in offsets]  # a section starts with the token holding its first character
        token_starts = sorted({bisect.bisect_right(ends, s) for s in section_starts} - {0, n})
        sections = list(zip([0, *token_starts], [*token_starts, n]))
        ranges: list[tuple[int, int]] = []
        first, end = sections[0]
        for a, b in sections[1:]:
            if b - first <= size or end - first < smallest:
                end = b  # it fits, or what is pending is too small to stand alone
            else:
                ranges.append((first, end))
                first, end = a, b
        ranges.append((first, end))
        if len(ranges) > 1 and ranges[-1][1] - ranges[-1][0] < smallest:
            ranges[-2:] = [(ranges[-2][0], ranges[-1][1])]  # a short last section joins the one before
        return ranges

    def _windows(self, first: int, end: int, starts_word: list[bool]) -> list[tuple[int, int]]:
        """Inclusive token windows over [first, end): at most max_tokens each, `overlap` tokens
        shared, edges moved to word starts; the last at least min_tokens long where it can be."""
        size, overlap, smallest = self.options.max_tokens, self.options.overlap, self.options.smallest
        windows = []
        while True:
            last = min(first + size, end) - 1
            if last < end - 1:  # end before a word start if one is near (BPE pieces split words)
                for i in range(last, max(first + size // 2, last - SNAP_TOKENS), -1):
                    if starts_word[i + 1]:
                        last = i
                        break
            if windows and last == end - 1 and last - first + 1 < smallest:
                # A short tail: let it start earlier, at a word start, inside the window before.
                first = max(windows[-1][0] + 1, end - size)
                first = next((i for i in range(first, last + 1) if starts_word[i]), first)
            windows.append((first, last))
            if last == end - 1:
                return windows
            # The next window starts `overlap` tokens back, moved to a word start: forward within
            # the overlap (it never starts after this window's end), else a little further back.
            nxt = last + 1 - overlap
            ahead = [i for i in range(nxt, last + 1) if starts_word[i]]
            behind = [i for i in range(nxt - 1, max(first, nxt - SNAP_TOKENS - 1), -1) if starts_word[i]]
            nxt = ahead[0] if ahead else behind[0] if behind else nxt
            first = max(nxt, first + 1)


def _piece_end(text: str, begin: int, piece_chars: int, section_starts: list[int]) -> int:
    """Where the piece of `text` from `begin` ends: the whole rest if short, else the last section
    start of its second half, else the last whitespace before `piece_chars`, else right there."""
    limit = begin + piece_chars
    if limit >= len(text):
        return len(text)
    i = bisect.bisect_right(section_starts, limit) - 1
    if i >= 0 and section_starts[i] > begin + piece_chars // 2:
        return section_starts[i]
    space = max(text.rfind(" ", begin + piece_chars // 2, limit), text.rfind("\n", begin + piece_chars // 2, limit))
    return space + 1 if space > 0 else limit


def _word_boundary(text: str, offset: int) -> bool:
    """A token starting here starts a word: it begins with a space or follows one."""
    return offset >= len(text) or text[offset].isspace() or text[offset - 1].isspace()
