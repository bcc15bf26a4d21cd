"""Python clients of the engine: over HTTP (`Client`, `AsyncClient`, on httpx) or in-process
(`LocalClient`, on a `SearchEngine`), with the same calls and the same typed results, so code
moves from a laptop to a server by changing one line.

    from lfm2_retrieval.client import Client, LocalClient
    client = Client("http://127.0.0.1:8000", api_key="...")      # or LocalClient.open("indexes/docs")
    client.add([{"id": "faq-1", "text": "Hold the button for 5 s.", "metadata": {"lang": "en"}}])
    for hit in client.search("how do I reset it?", k=5, filter={"lang": "en"}):
        print(hit.score, hit.id, hit.text)

Results are the HTTP API's own models (api/schemas.py): `Hit`, `SearchResponse`,
`AddDocumentsResponse`, `DeleteResponse`, `HealthResponse`. The server's JSON errors are raised as
`ApiError` subclasses that carry its `error` code, message and detail. Connection errors (a
server restarting) are retried with backoff, and so is 409 `index_locked` (another writer); a
server that never answers is `Unreachable`, an ApiError too.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from .api.schemas import (AddDocumentsResponse, DeleteResponse, DeleteWhereResponse, HealthResponse, Hit, IndexInfo,
                          ModelInfo, SearchResponse)

DEFAULT_URL = "http://127.0.0.1:8000"


class ApiError(Exception):
    """An error answer of the server: HTTP status, machine code (`error`), message, detail."""

    def __init__(self, status: int, error: str, message: str, detail: Any = None) -> None:
        super().__init__(f"{status} {error}: {message}")
        self.status, self.error, self.message, self.detail = status, error, message, detail


class InvalidRequest(ApiError):
    """400 and 422: a bad filter, query or document."""


class Unauthorized(ApiError):
    """401: a missing or wrong API key."""


class Forbidden(ApiError):
    """403: a read-only key was used for a write."""


class NotFound(ApiError):
    """404: no such document or chunk."""


class Conflict(ApiError):
    """409: the id exists (with upsert=False), or the index is locked by another writer."""


class TooLarge(ApiError):
    """413: the request body is over the server's limit."""


class RateLimited(ApiError):
    """429: over the server's request rate for this key; `detail` is None, wait and retry."""


class ServerError(ApiError):
    """5xx: the server failed (a damaged index says so in `error`: index_damaged)."""


class Unreachable(ApiError):
    """No answer at all: the server is down, restarting past the retries, or the network failed
    (status 0, error "unreachable"; the transport's own exception is its __cause__)."""


_ERRORS = {400: InvalidRequest, 401: Unauthorized, 403: Forbidden, 404: NotFound, 409: Conflict, 413: TooLarge,
           422: InvalidRequest, 429: RateLimited}


def _raise_for(response: httpx.Response) -> None:
    if response.is_success:
        return
    try:
        body = response.json()
        error, message, detail = body.get("error", "http_error"), body.get("message", response.text), body.get("detail")
    except ValueError:
        error, message, detail = "http_error", response.text[:500], None
    cls = _ERRORS.get(response.status_code, ServerError if response.status_code >= 500 else ApiError)
    raise cls(response.status_code, error, message, detail)


def _search_body(query: str | Sequence[str], k: int, filter: dict | None, mode: str, per_document: bool,
                 alpha: float | None, fusion: str | None, offset: int = 0, explain: bool = False,
                 dense_weight: float | None = None, highlight: bool = False) -> dict[str, Any]:
    """The body of POST /search: engine/request.py's SearchRequest, the fields left at their
    defaults left out."""
    body: dict[str, Any] = {"k": k, "mode": mode, "per_document": per_document}
    body["query" if isinstance(query, str) else "queries"] = query if isinstance(query, str) else list(query)
    for key, value in (("filter", filter), ("alpha", alpha), ("fusion", fusion), ("dense_weight", dense_weight)):
        if value is not None:
            body[key] = value
    if offset:
        body["offset"] = offset
    if explain:
        body["explain"] = True
    if highlight:
        body["highlight"] = True
    return body


def _documents_body(documents: Sequence[dict | Any], upsert: bool) -> dict[str, Any]:
    docs = []
    for d in documents:
        if isinstance(d, dict):
            docs.append({"id": d["id"], "text": d["text"], "metadata": d.get("metadata") or {}})
        else:  # a TextDocument or anything with id, text, metadata
            docs.append({"id": d.id, "text": d.text, "metadata": dict(getattr(d, "metadata", None) or {})})
    return {"documents": docs, "upsert": upsert}


def _hits(response: SearchResponse, query: str | Sequence[str]) -> list[Hit] | list[list[Hit]]:
    return response.results[0].hits if isinstance(query, str) else [r.hits for r in response.results]


class _Retrying:
    """Retries on connection errors and on 409 index_locked, with exponential backoff."""

    def __init__(self, retries: int, backoff: float, url: str) -> None:
        self.retries, self.backoff, self.url = retries, backoff, url

    def unreachable(self, exc: httpx.TransportError) -> Unreachable:
        return Unreachable(0, "unreachable", f"no answer from {self.url} after {self.retries + 1} tries: "
                                             f"{type(exc).__name__}: {exc}")

    def delays(self):
        yield from (self.backoff * 2 ** i for i in range(self.retries))

    @staticmethod
    def locked(response: httpx.Response) -> bool:
        return response.status_code == 409 and '"index_locked"' in response.text


class _Hits:
    """`search` for clients whose `search_response` answers synchronously."""

    def search(self, query: str | Sequence[str], k: int = 10, filter: dict | None = None, mode: str = "hybrid",
               per_document: bool = False, alpha: float | None = None, fusion: str | None = None,
               offset: int = 0, explain: bool = False,
               dense_weight: float | None = None, highlight: bool = False) -> list[Hit] | list[list[Hit]]:
        """The hits of one query (a str), or one list per query (a list of them); offset: hits
        skipped first (the next page); explain: each hit's token matches (Hit.explain) and, in
        hybrid mode, each signal's share of its score (Hit.legs); dense_weight: the dense leg's
        weight on an index with dense vectors; highlight: each hit's snippet (Hit.snippet)."""
        return _hits(self.search_response(query, k, filter, mode, per_document, alpha, fusion, offset, explain,
                                          dense_weight, highlight), query)


class Client(_Hits):
    """The HTTP API from Python (synchronous)."""

    def __init__(self, url: str = DEFAULT_URL, api_key: str | None = None, timeout: float = 30.0,
                 retries: int = 3, backoff: float = 0.5, transport: httpx.BaseTransport | None = None) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=timeout, transport=transport)
        self._retry = _Retrying(retries, backoff, url)

    def _request(self, method: str, path: str, **kwargs) -> Any:
        delays = self._retry.delays()
        while True:
            try:
                response = self._http.request(method, path, **kwargs)
            except httpx.TransportError as exc:
                delay = next(delays, None)
                if delay is None:
                    raise self._retry.unreachable(exc) from exc
                time.sleep(delay)
                continue
            if self._retry.locked(response) and (delay := next(delays, None)) is not None:
                time.sleep(delay)
                continue
            _raise_for(response)
            return response.json()

    def search_response(self, query: str | Sequence[str], k: int = 10, filter: dict | None = None,
                        mode: str = "hybrid", per_document: bool = False, alpha: float | None = None,
                        fusion: str | None = None, offset: int = 0, explain: bool = False,
                        dense_weight: float | None = None, highlight: bool = False) -> SearchResponse:
        """The whole answer: hits per query, the commit they come from, the time taken."""
        body = _search_body(query, k, filter, mode, per_document, alpha, fusion, offset, explain, dense_weight,
                            highlight)
        return SearchResponse.model_validate(self._request("POST", "/search", json=body))

    def add(self, documents: Sequence[dict | Any], upsert: bool = True) -> AddDocumentsResponse:
        """Add documents in one atomic commit; existing ids are replaced unless upsert=False (409)."""
        return AddDocumentsResponse.model_validate(self._request("POST", "/documents",
                                                                 json=_documents_body(documents, upsert)))

    def delete(self, doc_id: str) -> DeleteResponse:
        """Delete a document (all its chunks) by document id; NotFound if there is none. Safe
        to retry: an id is never taken for a chunk's."""
        return DeleteResponse.model_validate(self._request("DELETE", f"/documents/{quote(doc_id, safe='')}"))

    def delete_chunk(self, chunk_id: str) -> DeleteResponse:
        """Delete one chunk by chunk id (a hit's id); NotFound if there is none."""
        return DeleteResponse.model_validate(self._request("DELETE", f"/chunks/{quote(chunk_id, safe='')}"))

    def delete_where(self, filter: dict) -> DeleteWhereResponse:
        """Delete every chunk whose metadata matches `filter` (search's filter language), in one
        commit; deleted_chunks 0 when none matched."""
        return DeleteWhereResponse.model_validate(self._request("POST", "/documents/delete", json={"filter": filter}))

    def health(self) -> HealthResponse:
        return HealthResponse.model_validate(self._request("GET", "/health"))

    def facets(self) -> dict[str, Any]:
        """GET /facets: the chunk count, and the values of the metadata fields with few of them."""
        return self._request("GET", "/facets")

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class AsyncClient:
    """The HTTP API from Python (asyncio)."""

    def __init__(self, url: str = DEFAULT_URL, api_key: str | None = None, timeout: float = 30.0,
                 retries: int = 3, backoff: float = 0.5, transport: httpx.AsyncBaseTransport | None = None) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.AsyncClient(base_url=url.rstrip("/"), headers=headers, timeout=timeout, transport=transport)
        self._retry = _Retrying(retries, backoff, url)

    async def _request(self, method: str, path: str, **kwargs) -> Any:
        delays = self._retry.delays()
        while True:
            try:
                response = await self._http.request(method, path, **kwargs)
            except httpx.TransportError as exc:
                delay = next(delays, None)
                if delay is None:
                    raise self._retry.unreachable(exc) from exc
                await asyncio.sleep(delay)
                continue
            if self._retry.locked(response) and (delay := next(delays, None)) is not None:
                await asyncio.sleep(delay)
                continue
            _raise_for(response)
            return response.json()

    async def search(self, query: str | Sequence[str], k: int = 10, filter: dict | None = None,
                     mode: str = "hybrid", per_document: bool = False, alpha: float | None = None,
                     fusion: str | None = None, offset: int = 0, explain: bool = False,
                     dense_weight: float | None = None, highlight: bool = False) -> list[Hit] | list[list[Hit]]:
        body = _search_body(query, k, filter, mode, per_document, alpha, fusion, offset, explain, dense_weight,
                            highlight)
        return _hits(SearchResponse.model_validate(await self._request("POST", "/search", json=body)), query)

    async def add(self, documents: Sequence[dict | Any], upsert: bool = True) -> AddDocumentsResponse:
        return AddDocumentsResponse.model_validate(await self._request("POST", "/documents",
                                                                       json=_documents_body(documents, upsert)))

    async def delete(self, doc_id: str) -> DeleteResponse:
        return DeleteResponse.model_validate(await self._request("DELETE", f"/documents/{quote(doc_id, safe='')}"))

    async def delete_chunk(self, chunk_id: str) -> DeleteResponse:
        return DeleteResponse.model_validate(await self._request("DELETE", f"/chunks/{quote(chunk_id, safe='')}"))

    async def delete_where(self, filter: dict) -> DeleteWhereResponse:
        return DeleteWhereResponse.model_validate(await self._request("POST", "/documents/delete",
                                                                      json={"filter": filter}))

    async def health(self) -> HealthResponse:
        return HealthResponse.model_validate(await self._request("GET", "/health"))

    async def facets(self) -> dict[str, Any]:
        return await self._request("GET", "/facets")

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *exc) -> None:
        await self.aclose()


def _validated(model, body: dict[str, Any]):
    """`body` as the HTTP API's request model, or the error the server would answer."""
    from pydantic import ValidationError

    from .engine.request import request_error

    try:
        return model.model_validate(body)
    except ValidationError as exc:
        known = request_error(exc)
        raise _ERRORS.get(known.http_status, InvalidRequest)(known.http_status, known.code, str(known),
                                                             exc.errors(include_context=False)) from None


class LocalClient(_Hits):
    """The same calls on a `SearchEngine` in this process (no server), with the same results and
    errors: validated like the HTTP API's requests."""

    def __init__(self, engine, root: str | Path | None = ".") -> None:
        """`root`: file paths in ids and sources are shown relative to it and taken relative to
        it in deletes and filters, as the server does with its root (default: where this
        process runs; None: absolute, as the index holds them)."""
        from .ingest.sources import PathView

        self.engine = engine
        self.paths = PathView(root)

    @classmethod
    def open(cls, index: str | Path, model: str | None = None, create: bool = False,
             root: str | Path | None = ".") -> "LocalClient":
        """The index at `index`; create=True makes an empty one there if there is none (else a
        missing index is an error, not a new one made by a typo)."""
        from .engine import SearchEngine

        return cls(SearchEngine.open(index, model=model, create=create), root)

    def search_response(self, query: str | Sequence[str], k: int = 10, filter: dict | None = None,
                        mode: str = "hybrid", per_document: bool = False, alpha: float | None = None,
                        fusion: str | None = None, offset: int = 0, explain: bool = False,
                        dense_weight: float | None = None, highlight: bool = False) -> SearchResponse:
        from .engine import SearchRequest

        body = _search_body(query, k, filter, mode, per_document, alpha, fusion, offset, explain, dense_weight,
                            highlight)
        if body.get("filter") is not None:
            body["filter"] = self.paths.held_filter(body["filter"])
        request = _validated(SearchRequest, body)
        with self._answers():
            return SearchResponse.of(self.engine.answer(request), self.paths)

    def add(self, documents: Sequence[dict | Any], upsert: bool = True) -> AddDocumentsResponse:
        from .api.schemas import AddDocumentsRequest
        from .engine import TextDocument

        request = _validated(AddDocumentsRequest, _documents_body(documents, upsert))
        docs = [TextDocument(d.id, d.text, dict(d.metadata)) for d in request.documents]
        with self._answers():
            summary = self.engine.upsert(docs, replace=request.upsert)
        return AddDocumentsResponse(documents=summary.documents, chunks=summary.chunks, commit=summary.commit)

    def delete(self, doc_id: str) -> DeleteResponse:
        with self._answers():
            done = self.paths.first_held(doc_id, lambda name: self.engine.delete_documents([name]))
        if done.chunks == 0:
            raise NotFound(404, "not_found", f"no document with id {doc_id!r}")
        return DeleteResponse(id=doc_id, deleted_chunks=done.chunks, commit=done.commit)

    def delete_chunk(self, chunk_id: str) -> DeleteResponse:
        with self._answers():
            done = self.paths.first_held(chunk_id, lambda name: self.engine.delete_chunks([name]))
        if done.chunks == 0:
            raise NotFound(404, "not_found", f"no chunk with id {chunk_id!r}")
        return DeleteResponse(id=chunk_id, deleted_chunks=done.chunks, commit=done.commit)

    def delete_where(self, filter: dict) -> DeleteWhereResponse:
        from .api.schemas import DeleteWhereRequest

        request = _validated(DeleteWhereRequest, {"filter": filter})
        with self._answers():
            done = self.engine.delete_where(self.paths.held_filter(request.filter))
        return DeleteWhereResponse(deleted_chunks=done.chunks, commit=done.commit)

    def health(self) -> HealthResponse:
        self.engine.refresh()
        counts = self.engine.counts
        return HealthResponse(
            status="ok",
            model=ModelInfo(source=self.engine.model_source, fingerprint=self.engine.encoder.fingerprint,
                            dim=self.engine.encoder.dim),
            index=IndexInfo(path=str(self.engine.path), chunks=counts.chunks, tokens=counts.tokens,
                            commit=self.engine.commit))

    def facets(self) -> dict[str, Any]:
        """What GET /facets answers: the chunk count, commit, and the values of the metadata
        fields with few of them."""
        from .api.routes.search import facets_of

        self.engine.refresh()
        return {"chunks": len(self.engine), "commit": self.engine.commit, **facets_of(self.engine)}

    @contextmanager
    def _answers(self):
        """The engine's errors as the server would answer them (errors.py's table), so code
        written against Client runs unchanged on LocalClient."""
        from .errors import as_search_error

        try:
            yield
        except Exception as exc:
            known = as_search_error(exc, self.engine.path)
            if known is None:
                raise
            raise _ERRORS.get(known.http_status, ServerError)(known.http_status, known.code, str(known)) from None

    def close(self) -> None:
        pass

    def __enter__(self) -> "LocalClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
