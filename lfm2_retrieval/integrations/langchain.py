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

from pydantic import ConfigDict


def to_document(hit) -> Document:
    return Document(page_content=hit.text, id=hit.id, metadata={**hit.metadata, "id": hit.id, "score": hit.score})


class LFM2Retriever(BaseRetriever):
    """Chunks (or, with per_document, one best chunk per document) for a query."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    client: Any  # lfm2_retrieval.client.Client, AsyncClient or LocalClient
    k: int = 10
    mode: str = "hybrid"
    filter: dict | None = None
    per_document: bool = False

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        hits = self.client.search(query, k=self.k, filter=self.filter, mode=self.mode, per_document=self.per_document)
        return [to_document(h) for h in hits]

    async def _aget_relevant_documents(self, query: str, *,
                                       run_manager: AsyncCallbackManagerForRetrieverRun) -> list[Document]:
        search = self.client.search(query, k=self.k, filter=self.filter, mode=self.mode,
                                    per_document=self.per_document)
        hits = await search if hasattr(search, "__await__") else search
        return [to_document(h) for h in hits]
