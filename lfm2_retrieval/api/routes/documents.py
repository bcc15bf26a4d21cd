"""Writing: POST /documents (one atomic commit), DELETE /documents/{id}, DELETE /chunks/{id},
POST /documents/delete (every chunk a filter matches)."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from ...engine import TextDocument
from ...errors import NotFoundError
from ..auth import require_write_key
from ..schemas import (AddDocumentsRequest, AddDocumentsResponse, DeleteResponse, DeleteWhereRequest,
                       DeleteWhereResponse, ErrorResponse)
from ..state import Served, served

router = APIRouter(dependencies=[Depends(require_write_key)])
ERRORS = {401: {"model": ErrorResponse}, 403: {"model": ErrorResponse}, 413: {"model": ErrorResponse},
          409: {"model": ErrorResponse}}


@router.post("/documents", response_model=AddDocumentsResponse, responses=ERRORS)
def add_documents(request: AddDocumentsRequest, state: Served = Depends(served)) -> AddDocumentsResponse:
    """Add or replace documents in one atomic commit. Long texts are chunked; each chunk keeps the metadata."""
    docs = [TextDocument(d.id, d.text, dict(d.metadata)) for d in request.documents]
    summary = state.engine.upsert(docs, replace=request.upsert, timeout=state.settings.write_timeout_s)
    return AddDocumentsResponse(documents=summary.documents, chunks=summary.chunks, commit=summary.commit)


@router.delete("/documents/{doc_id:path}", response_model=DeleteResponse,
               responses={**ERRORS, 404: {"model": ErrorResponse}})
def delete_document(doc_id: str, state: Served = Depends(served)) -> DeleteResponse:
    """Delete a document (all its chunks) by its document id. Never a chunk: retrying the
    same request after the document is gone answers 404 and deletes nothing else."""
    timeout = state.settings.write_timeout_s
    done = state.paths.first_held(doc_id, lambda name: state.engine.delete_documents([name], timeout=timeout))
    if done.chunks == 0:
        raise NotFoundError(f"no document with id {doc_id!r} (a single chunk is deleted with DELETE /chunks/ID)")
    return DeleteResponse(id=doc_id, deleted_chunks=done.chunks, commit=done.commit)


@router.delete("/chunks/{chunk_id:path}", response_model=DeleteResponse,
               responses={**ERRORS, 404: {"model": ErrorResponse}})
def delete_chunk(chunk_id: str, state: Served = Depends(served)) -> DeleteResponse:
    """Delete one chunk by its chunk id (a hit's `id`, e.g. `guide.md#3`)."""
    timeout = state.settings.write_timeout_s
    done = state.paths.first_held(chunk_id, lambda name: state.engine.delete_chunks([name], timeout=timeout))
    if done.chunks == 0:
        raise NotFoundError(f"no chunk with id {chunk_id!r}")
    return DeleteResponse(id=chunk_id, deleted_chunks=done.chunks, commit=done.commit)


@router.post("/documents/delete", response_model=DeleteWhereResponse,
             responses={**ERRORS, 400: {"model": ErrorResponse}})
def delete_where(request: DeleteWhereRequest, state: Served = Depends(served)) -> DeleteWhereResponse:
    """Delete every chunk whose metadata matches `filter`, in one commit: a document added in
    parts (`{"ref_doc_id": ...}`), a folder of files (`{"source": {"$prefix": "docs/old/"}}`,
    relative to the server's folder). A malformed filter is a 400 and deletes nothing."""
    done = state.engine.delete_where(state.paths.held_filter(request.filter), timeout=state.settings.write_timeout_s)
    return DeleteWhereResponse(deleted_chunks=done.chunks, commit=done.commit)
