"""LangChain: `LFM2Retriever`, a `BaseRetriever` over an lfm2-search client.

    from lfm2_retrieval.client import Client
    from lfm2_retrieval.integrations.langchain import LFM2Retriever

    retriever = LFM2Retriever(client=Client("http://127.0.0.1:8000"), k=5, filter={"lang": "en"})
    docs = retriever.invoke("how do I rotate the keys?")   # langchain_core Documents

Each Document's page_content is the chunk's text; its metadata is the chunk's (doc_id, source,
title, section, lang, ...) plus `id` (the chunk id) and `score`.
"""

from __future__ import annotations

from typing import Any

try:
    from langchain_core.callbacks import AsyncCallbackManagerForRetrieverRun, CallbackManagerForRetrieverRun
    from langchain_core.documents import Document
    from langchain_core.retrievers import BaseRetriever
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("the LangChain retriever needs langchain-core: pip install langchain-core") from exc

from pydantic import ConfigDict, Field, field_validator

# What search_kwargs (and invoke's keyword arguments) may set, as a VectorStoreRetriever's do.
SEARCH_KEYS = {"k", "filter", "mode", "per_document", "offset", "score_threshold"}
SEARCH_TYPES = ("similarity", "similarity_score_threshold")


def to_document(hit) -> Document:
    return Document(page_content=hit.text, id=hit.id, metadata={**hit.metadata, "id": hit.id, "score": hit.score})


class LFM2Retriever(BaseRetriever):
    """Chunks (or, with per_document, one best chunk per document) for a query.

    `k`, `filter`, `mode`, `per_document` as fields, or in `search_kwargs` (which win), or for
    one call as `invoke(query, k=1)` (which wins over both); `score_threshold` drops hits below
    it (search_type "similarity_score_threshold"; hybrid scores are normalised per query, so a
    threshold there is relative to the best hit). Unknown keys and search types are errors."""

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
        hits = self.client.search(query, **settings)
        if hasattr(hits, "__await__"):
            hits.close()  # never awaited: say why instead of a coroutine warning
            raise TypeError("this retriever's client is an AsyncClient: call `ainvoke`, or give it a Client")
        return _documents(hits, threshold)

    async def _aget_relevant_documents(self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun,
                                       **kwargs: Any) -> list[Document]:
        settings, threshold = self._settings(kwargs)
        search = self.client.search
        if _is_async(search):
            hits = await search(query, **settings)
        else:  # a blocking client runs in a worker thread, never on the event loop
            import asyncio

            hits = await asyncio.to_thread(search, query, **settings)
        return _documents(hits, threshold)


def _check_keys(settings: dict) -> None:
    unknown = set(settings) - SEARCH_KEYS
    if unknown:
        raise ValueError(f"unknown search settings {sorted(unknown)}; the retriever takes {sorted(SEARCH_KEYS)}")


def _documents(hits, threshold: float | None) -> list[Document]:
    return [to_document(h) for h in hits if threshold is None or h.score >= threshold]


def _is_async(method) -> bool:
    import inspect

    return inspect.iscoroutinefunction(method)
