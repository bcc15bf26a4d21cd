"""LlamaIndex: `LFM2Retriever`, a `BaseRetriever` over an lfm2-search client.

    from lfm2_retrieval.client import Client
    from lfm2_retrieval.integrations.llamaindex import LFM2Retriever

    retriever = LFM2Retriever(Client("http://127.0.0.1:8000"), k=5, mode="hybrid")
    nodes = retriever.retrieve("how do I rotate the keys?")   # NodeWithScore, best first

Each node is a TextNode whose id is the chunk id, whose text is the chunk's and whose metadata is
the chunk's (doc_id, source, title, section, lang, ...); the score is the engine's.
"""

from __future__ import annotations

from typing import Any

try:
    from llama_index.core.retrievers import BaseRetriever
    from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("the LlamaIndex retriever needs llama-index-core: pip install llama-index-core") from exc


def to_node(hit) -> NodeWithScore:
    return NodeWithScore(node=TextNode(id_=hit.id, text=hit.text, metadata=dict(hit.metadata)), score=hit.score)


class LFM2Retriever(BaseRetriever):
    """Chunks (or, with per_document, one best chunk per document) for a query."""

    def __init__(self, client: Any, k: int = 10, mode: str = "hybrid", filter: dict | None = None,
                 per_document: bool = False, **kwargs: Any) -> None:
        self.client, self.k, self.mode, self.filter, self.per_document = client, k, mode, filter, per_document
        super().__init__(**kwargs)

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        hits = self.client.search(query_bundle.query_str, k=self.k, filter=self.filter, mode=self.mode,
                                  per_document=self.per_document)
        return [to_node(h) for h in hits]

    async def _aretrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        search = self.client.search(query_bundle.query_str, k=self.k, filter=self.filter, mode=self.mode,
                                    per_document=self.per_document)
        hits = await search if hasattr(search, "__await__") else search
        return [to_node(h) for h in hits]
