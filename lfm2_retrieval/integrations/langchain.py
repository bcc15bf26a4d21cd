"""LangChain: `LFM2Retriever`, a `BaseRetriever`, and `LFM2SearchVectorStore`, a `VectorStore`,
over an lfm2-search client.

    from lfm2_retrieval.client import Client
    from lfm2_retrieval.integrations.langchain import LFM2Retriever

    retriever = LFM2Retriever(client=Client("http://127.0.0.1:8000"), k=5, filter={"lang": "en"})
    docs = retriever.invoke("how do I rotate the keys?")   # langchain_core Documents

    store = LFM2SearchVectorStore(Client("http://127.0.0.1:8000"))
    ids = store.add_texts(["Rotate the keys monthly."], metadatas=[{"lang": "en"}])
    store.as_retriever(search_kwargs={"k": 3, "filter": {"lang": "en"}}).invoke("key rotation")

Each Document's page_content is the chunk's text; its metadata is the chunk's (doc_id, source,
title, section, lang, ...) plus `id` (the chunk id) and `score`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

try:
    from langchain_core.callbacks import AsyncCallbackManagerForRetrieverRun, CallbackManagerForRetrieverRun
    from langchain_core.documents import Document
    from langchain_core.retrievers import BaseRetriever
    from langchain_core.vectorstores import VectorStore
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("the LangChain retriever needs langchain-core: pip install langchain-core") from exc

from pydantic import ConfigDict, Field, field_validator

from .calls import blocking, call

# What search_kwargs (and invoke's keyword arguments) may set, as a VectorStoreRetriever's do.
SEARCH_KEYS = {"k", "filter", "mode", "per_document", "offset", "score_threshold"}
SEARCH_TYPES = ("similarity", "similarity_score_threshold")


def threshold_score(hit) -> float:
    """What a score threshold reads: the hit's calibrated relevance (a probability, the same
    scale for every query) where the model has a calibration, else its score."""
    relevance = getattr(hit, "relevance", None)
    return hit.score if relevance is None else relevance


def _scores(hit) -> dict:
    relevance = getattr(hit, "relevance", None)
    return {"score": hit.score, **({} if relevance is None else {"relevance": relevance})}


def to_document(hit) -> Document:
    return Document(page_content=hit.text, id=hit.id, metadata={**hit.metadata, "id": hit.id, **_scores(hit)})


class LFM2Retriever(BaseRetriever):
    """Chunks (or, with per_document, one best chunk per document) for a query.

    `k`, `filter`, `mode`, `per_document` as fields, or in `search_kwargs` (which win), or for
    one call as `invoke(query, k=1)` (which wins over both); `score_threshold` drops hits whose
    calibrated `relevance` (a probability; docs/http-api.md) is below it (search_type
    "similarity_score_threshold"; with a model that has no calibration, the score). Unknown keys
    and search types are errors."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    client: Any  # lfm2_retrieval.client.Client, AsyncClient or LocalClient
    k: int = 10
    mode: str = "hybrid"
    filter: dict | None = None
    per_document: bool = False
    search_type: str = "similarity"
    search_kwargs: dict = Field(default_factory=dict)

    @field_validator("search_type")
    @classmethod
    def _known_type(cls, value: str) -> str:
        if value not in SEARCH_TYPES:
            raise ValueError(f"search_type must be one of {SEARCH_TYPES} (late interaction has no 'mmr'), "
                             f"not {value!r}")
        return value

    @field_validator("search_kwargs")
    @classmethod
    def _known_keys(cls, value: dict) -> dict:
        _check_keys(value)
        return value

    def _settings(self, overrides: dict) -> tuple[dict, float | None]:
        _check_keys(overrides)
        settings = {"k": self.k, "filter": self.filter, "mode": self.mode, "per_document": self.per_document,
                    **self.search_kwargs, **overrides}
        threshold = settings.pop("score_threshold", None)
        if self.search_type == "similarity_score_threshold" and threshold is None:
            raise ValueError("search_type 'similarity_score_threshold' needs search_kwargs['score_threshold']")
        return settings, threshold

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun,
                                **kwargs: Any) -> list[Document]:
        settings, threshold = self._settings(kwargs)
        return _documents(blocking(self.client.search(query, **settings), "ainvoke"), threshold)

    async def _aget_relevant_documents(self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun,
                                       **kwargs: Any) -> list[Document]:
        settings, threshold = self._settings(kwargs)
        return _documents(await call(self.client.search, query, **settings), threshold)


def _check_keys(settings: dict) -> None:
    unknown = set(settings) - SEARCH_KEYS
    if unknown:
        raise ValueError(f"unknown search settings {sorted(unknown)}; the retriever takes {sorted(SEARCH_KEYS)}")


def _documents(hits, threshold: float | None) -> list[Document]:
    return [to_document(h) for h in hits if threshold is None or threshold_score(h) >= threshold]


class LFM2SearchVectorStore(VectorStore):
    """An lfm2-search index as a LangChain VectorStore, over a client (`Client`, `AsyncClient` or
    `LocalClient`): texts in (`add_texts`, `add_documents`, `from_texts`), chunks out
    (`similarity_search`, `..._with_score`, `as_retriever`), `delete` by id, and async twins.

    The engine embeds (late interaction and BM25; no `Embeddings` object is used), so
    `embedding` is accepted and ignored. A text longer than a chunk is stored as several chunks;
    a hit's Document has the text's id as `id` and the chunk's id in `metadata["id"]`, so
    `delete(ids)` takes what `add_texts` returned. `similarity_search_with_score` gives the
    request mode's score; LangChain's relevance scores (`similarity_search_with_relevance_scores`,
    `similarity_score_threshold`) are the hits' calibrated `relevance`, a probability on the same
    scale for every query, where the model has a calibration (else the score)."""

    def __init__(self, client: Any, mode: str = "hybrid", per_document: bool = False) -> None:
        self.client, self.mode, self.per_document = client, mode, per_document

    @property
    def embeddings(self) -> None:
        return None

    # ------------------------------------------------------------------ writing
    def add_texts(self, texts: Iterable[str], metadatas: list[dict] | None = None, *, ids: list[str] | None = None,
                  **kwargs: Any) -> list[str]:
        batches, ids = _batches(texts, metadatas, ids)
        for batch in batches:
            blocking(self.client.add(batch), "aadd_texts")
        return ids

    async def aadd_texts(self, texts: Iterable[str], metadatas: list[dict] | None = None, *,
                         ids: list[str] | None = None, **kwargs: Any) -> list[str]:
        batches, ids = _batches(texts, metadatas, ids)
        for batch in batches:
            await call(self.client.add, batch)
        return ids

    def delete(self, ids: list[str] | None = None, **kwargs: Any) -> bool:
        """Delete texts by id (all their chunks); True when every id was found."""
        if not ids:
            raise ValueError("give the ids to delete (deleting everything is not offered here)")
        return all(_deleted(self.client, doc_id) for doc_id in ids)

    async def adelete(self, ids: list[str] | None = None, **kwargs: Any) -> bool:
        if not ids:
            raise ValueError("give the ids to delete (deleting everything is not offered here)")
        found = [await _adeleted(self.client, doc_id) for doc_id in ids]
        return all(found)

    # ------------------------------------------------------------------ searching
    def similarity_search(self, query: str, k: int = 4, filter: dict | None = None,
                          **kwargs: Any) -> list[Document]:
        return [doc for doc, _ in self.similarity_search_with_score(query, k, filter, **kwargs)]

    def similarity_search_with_score(self, query: str, k: int = 4, filter: dict | None = None,
                                     **kwargs: Any) -> list[tuple[Document, float]]:
        return [(_stored(h), h.score) for h in self._hits(query, k, filter, kwargs)]

    async def asimilarity_search(self, query: str, k: int = 4, filter: dict | None = None,
                                 **kwargs: Any) -> list[Document]:
        return [doc for doc, _ in await self.asimilarity_search_with_score(query, k, filter, **kwargs)]

    async def asimilarity_search_with_score(self, query: str, k: int = 4, filter: dict | None = None,
                                            **kwargs: Any) -> list[tuple[Document, float]]:
        return [(_stored(h), h.score) for h in await self._ahits(query, k, filter, kwargs)]

    # LangChain's relevance scores (similarity_search_with_relevance_scores, score thresholds)
    def _similarity_search_with_relevance_scores(self, query: str, k: int = 4,
                                                 **kwargs: Any) -> list[tuple[Document, float]]:
        hits = self._hits(query, k, kwargs.pop("filter", None), kwargs)
        return [(_stored(h), threshold_score(h)) for h in hits]

    async def _asimilarity_search_with_relevance_scores(self, query: str, k: int = 4,
                                                        **kwargs: Any) -> list[tuple[Document, float]]:
        hits = await self._ahits(query, k, kwargs.pop("filter", None), kwargs)
        return [(_stored(h), threshold_score(h)) for h in hits]

    def _hits(self, query: str, k: int, filter: dict | None, extra: dict):
        return blocking(self.client.search(query, **self._settings(k, filter, extra)), "asimilarity_search")

    async def _ahits(self, query: str, k: int, filter: dict | None, extra: dict):
        return await call(self.client.search, query, **self._settings(k, filter, extra))

    def _settings(self, k: int, filter: dict | None, extra: dict) -> dict:
        extra = {key: value for key, value in extra.items() if key != "score_threshold"}  # applied by LangChain
        unknown = set(extra) - {"mode", "per_document", "offset"}
        if unknown:
            raise ValueError(f"unknown search settings {sorted(unknown)}; the store takes k, filter, mode, "
                             "per_document, offset, score_threshold")
        return {"k": k, "filter": filter, "mode": self.mode, "per_document": self.per_document, **extra}

    @classmethod
    def from_texts(cls, texts: list[str], embedding: Any = None, metadatas: list[dict] | None = None, *,
                   ids: list[str] | None = None, client: Any = None, **kwargs: Any) -> "LFM2SearchVectorStore":
        """A store over `client` (required) with `texts` added; `embedding` is ignored."""
        if client is None:
            raise ValueError("from_texts needs client=: a Client, AsyncClient or LocalClient")
        store = cls(client, **kwargs)
        store.add_texts(texts, metadatas, ids=ids)
        return store


MAX_BATCH = 256  # documents a request may hold (the HTTP API's limit)


def _batches(texts: Iterable[str], metadatas: list[dict] | None, ids: list[str] | None):
    import uuid

    texts = list(texts)
    ids = [i or uuid.uuid4().hex for i in ids] if ids is not None else [uuid.uuid4().hex for _ in texts]
    metadatas = metadatas or [{} for _ in texts]
    if not len(texts) == len(ids) == len(metadatas):
        raise ValueError("texts, metadatas and ids must be as many")
    docs = [{"id": i, "text": t, "metadata": m or {}} for t, m, i in zip(texts, metadatas, ids)]
    return [docs[s: s + MAX_BATCH] for s in range(0, len(docs), MAX_BATCH)], ids


def _stored(hit) -> Document:
    """A hit as the text it came from: the text's id, the chunk's id and score in metadata."""
    return Document(page_content=hit.text, id=str(hit.metadata.get("doc_id", hit.id)),
                    metadata={**hit.metadata, "id": hit.id, **_scores(hit)})


def _deleted(client: Any, doc_id: str) -> bool:
    from ..client import NotFound

    try:
        blocking(client.delete(doc_id), "adelete")
        return True
    except NotFound:
        return False


async def _adeleted(client: Any, doc_id: str) -> bool:
    from ..client import NotFound

    try:
        await call(client.delete, doc_id)
        return True
    except NotFound:
        return False
