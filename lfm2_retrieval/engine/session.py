"""A writing session: the changes of one commit, staged under the index's writer lock.

    with engine.writing() as session:
        session.delete(["old-doc"])               # a document (all its chunks), or one chunk
        session.add(chunks, vectors)              # prepared chunks and their token vectors
    # leaving the block commits atomically; an exception rolls everything back

One session at a time per index, across processes (a file lock) and threads. The CLI, the
ingestion pipeline and the HTTP API all change an index through a session; nothing else in
the package opens an index writer.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ..index.contract import Transaction
from .documents import PreparedChunk

if TYPE_CHECKING:
    from ..index import IndexWriter, MultiVectorIndex


def chunk_ids_of(index: "MultiVectorIndex", doc_ids: Iterable[str]) -> dict[str, list[str]]:
    """The stored chunk ids of each document (documents with none are left out)."""
    wanted = list(dict.fromkeys(doc_ids))
    out: dict[str, list[str]] = {}
    if wanted:
        for cid, meta in index.scan_metadata(["doc_id"], {"doc_id": {"$in": wanted}}):
            out.setdefault(meta["doc_id"], []).append(cid)
    return out


class WriteSession(Transaction):
    def __init__(self, index: "MultiVectorIndex", writer: "IndexWriter", on_close: Callable[[bool], None]) -> None:
        self._index, self._writer, self._on_close = index, writer, on_close
        self.closed = False

    # ------------------------------------------------------------------ reading, as of the lock
    def chunk_ids(self, doc_ids: Iterable[str]) -> dict[str, list[str]]:
        """The stored chunk ids of each document, read under the lock (so no other writer can
        change them before this session commits). Documents with none are left out."""
        return chunk_ids_of(self._index, doc_ids)

    # ------------------------------------------------------------------ changes
    def add(self, chunks: Sequence[PreparedChunk], vectors: Sequence[np.ndarray],
            dense: np.ndarray | None = None) -> None:
        """Stage new chunks (their ids must not be stored yet: delete old versions first);
        `dense`, one vector per chunk, exactly when the index has a dense slot."""
        if chunks:
            self._writer.add([c.id for c in chunks], vectors, [c.text for c in chunks], [c.metadata for c in chunks],
                             dense=dense)

    def add_encoded(self, chunks: Sequence[PreparedChunk], codes: np.ndarray, residuals: np.ndarray,
                    lengths: Sequence[int]) -> None:
        """Stage new chunks compressed already by the index's codec (`codec`), e.g. by encoding
        workers it was shipped to: their tokens' codes and residuals back to back, `lengths`
        tokens a chunk."""
        if chunks:
            self._writer.add_encoded([c.id for c in chunks], codes, residuals, lengths, [c.text for c in chunks],
                                     [c.metadata for c in chunks])

    @property
    def codec(self):
        """The codec chunks are compressed with (None until the index's first chunks train it)."""
        return self._writer.codec

    def delete_chunks(self, chunk_ids: Iterable[str]) -> int:
        """Stage the deletion of chunks by chunk id; returns how many were stored."""
        return self._writer.delete(list(chunk_ids))

    def delete(self, ids: Sequence[str]) -> int:
        """Delete documents (all their chunks) or single chunks by id; returns chunks deleted.

        An id that names a document means that document only: "X#1" deletes the document
        "X#1", never chunk 1 of a document "X" as well. An id that names no document may name
        a chunk."""
        documents = self.chunk_ids(ids)
        targets = [cid for cids in documents.values() for cid in cids]
        return self.delete_chunks(targets + [i for i in dict.fromkeys(ids) if i not in documents])

    def delete_where(self, filter: dict[str, Any]) -> int:
        """Delete every chunk whose metadata matches `filter` (e.g. {"source": path})."""
        return self.delete_chunks(self._index.ids_where(filter))

    # ------------------------------------------------------------------ the commit's user data
    @property
    def user_data(self) -> dict[str, Any]:
        """What the application recorded with the last commit (Manifest.user_data), as staged."""
        return copy.deepcopy(self._writer.manifest.user_data)

    def set_user_data(self, data: dict[str, Any]) -> None:
        """Record `data` with this session's commit, atomically with its changes (it replaces
        what earlier commits recorded; later commits carry it on)."""
        self._writer.set_user_data(data)

    @property
    def has_changes(self) -> bool:
        return self._writer.has_changes

    # ------------------------------------------------------------------ ending
    def commit(self) -> int:
        """Publish the staged changes atomically (no new commit when nothing changed); returns
        the commit the index is at after it. A session ends once: later calls do nothing.
        A failure is raised only when nothing was committed (writer.py: the commit point)."""
        if not self.closed:
            self.closed = True
            try:
                changed = self._writer.has_changes
                self._writer.commit()  # on failure before its commit point it rolls back and re-raises
            except BaseException:
                self._on_close(False)
                raise
            self._on_close(changed)
        return self.commit_number

    @property
    def commit_number(self) -> int:
        """The commit this session made (or, before it commits or when it changed nothing, the
        one it started from). The reader may still be at an older one if moving it failed."""
        return self._writer.commit_number

    def abort(self) -> None:
        """Drop the staged changes; the index stays at its last commit."""
        if not self.closed:
            self.closed = True
            try:
                self._writer.abort()
            finally:
                self._on_close(False)
