"""What a user adds (a document) and what the index stores (its chunks).

A document `id` is stored as chunks `id#0`, `id#1`, ... whose metadata holds `doc_id`, `chunk`,
`start_char`, `end_char` (and `page` for PDFs, `section` for Markdown and HTML, `lang`), so that
replacing or deleting a document touches all of its chunks in one atomic commit.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from ..errors import InvalidDocumentError
from ..index import ChunkMetadata
from .chunking import Chunker
from ..index.language import language_of

# A document's language is told from its first characters (a chunk's own comes from the chunk).
LANGUAGE_SAMPLE_CHARS = 20_000
# Set by the engine on every chunk; a document's own metadata may not use them.
RESERVED_METADATA = ("doc_id", "chunk", "start_char", "end_char")


@dataclass
class TextDocument:
    id: str
    text: str
    metadata: dict[str, Any] = field(default_factory=dict)
    title: str = ""
    # (character offset, page) where each page starts, for PDFs: chunks then carry `page`.
    page_starts: list[tuple[int, int]] | None = None
    # (character offset, heading path) where each section starts, for Markdown and HTML: chunks
    # follow section edges and carry `section`.
    sections: list[tuple[int, str]] | None = None

    def page_at(self, offset: int) -> int | None:
        return _value_at(self.page_starts, offset)

    def section_at(self, offset: int) -> str | None:
        return _value_at(self.sections, offset)


@dataclass
class PreparedChunk:
    """A chunk ready to encode and store: its id, text, metadata and token count."""

    id: str
    text: str
    metadata: dict[str, Any]
    n_tokens: int


@dataclass
class DocumentSummary:
    """A stored document as `lfm2-search list` shows it."""

    doc_id: str
    chunks: int
    source: str | None = None
    title: str | None = None


def _value_at(starts: list[tuple[int, Any]] | None, offset: int) -> Any:
    """The value of the last (start, value) at or before `offset`."""
    value = None
    for start, item in starts or []:
        if start > offset:
            break
        value = item
    return value


def clean_text(text: str) -> str:
    """Text that every tokenizer accepts: lone surrogates (possible in JSON) become U+FFFD."""
    return text.encode("utf-8", errors="replace").decode("utf-8") if not text.isascii() else text


def chunk_id(doc_id: str, number: int) -> str:
    return f"{doc_id}#{number}"


def document_of(chunk: str) -> str:
    """The document id of a chunk id made by chunk_id (document ids may hold "#" themselves)."""
    return chunk.rsplit("#", 1)[0]


def chunk_document(doc: TextDocument, chunker: Chunker,
                   identify: Callable[..., str | None] = language_of) -> list[PreparedChunk]:
    """A document's chunks with their ids and metadata (the document's metadata is shared by
    each: the index stores it once)."""
    return list(iter_chunk_document(doc, chunker, identify))


def iter_chunk_document(doc: TextDocument, chunker: Chunker,
                        identify: Callable[..., str | None] = language_of) -> Iterator[PreparedChunk]:
    """chunk_document, one chunk at a time (a long text is tokenised a piece at a time)."""
    clash = [k for k in RESERVED_METADATA if k in doc.metadata]
    if clash:  # refused now, not when the first chunk is asked for
        raise InvalidDocumentError(f"metadata keys {clash} are reserved (set by the engine for each chunk)")
    return _chunks(doc, chunker, identify)


def _chunks(doc: TextDocument, chunker: Chunker, identify: Callable[..., str | None]) -> Iterator[PreparedChunk]:
    section_starts = [start for start, _ in doc.sections or []]
    text = clean_text(doc.text)
    # What every chunk of the document carries: one dict, which the index stores once.
    shared = {**doc.metadata, "doc_id": doc.id}
    if doc.title:
        shared["title"] = doc.title
    # A document that says its language keeps it; else each chunk is identified (a page can
    # mix languages), falling back to the whole text's language where a chunk is unclear.
    detect = "lang" not in doc.metadata
    doc_lang = identify(text[:LANGUAGE_SAMPLE_CHARS]) if detect else None
    for number, chunk in enumerate(chunker.iter_split(text, section_starts)):
        meta = {"chunk": number, "start_char": chunk.start, "end_char": chunk.end}
        if doc.page_starts:
            meta["page"] = doc.page_at(chunk.start)
        if doc.sections and (section := doc.section_at(chunk.start)):
            meta["section"] = section
        if detect and (lang := identify(chunk.text, default=doc_lang)):
            meta["lang"] = lang
        yield PreparedChunk(chunk_id(doc.id, number), chunk.text, ChunkMetadata(shared, meta), chunk.n_tokens)
