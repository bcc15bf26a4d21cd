"""LlamaIndex: `LFM2Retriever`, a `BaseRetriever` over an lfm2-search client.

    from lfm2_retrieval.client import Client
    from lfm2_retrieval.integrations.llamaindex import LFM2Retriever

    retriever = LFM2Retriever(Client("http://127.0.0.1:8000"), k=5, mode="hybrid")
    nodes = retriever.retrieve("how do I rotate the keys?")   # NodeWithScore, best first

Each node is a TextNode whose id is the chunk id, whose text is the chunk's, whose metadata is
the chunk's (doc_id, source, title, section, lang, ...) and whose SOURCE relationship (ref_doc_id)
is its document; bookkeeping keys (offsets, chunk number, content hash) are kept from the LLM's
and the embedder's view. The score is the hit's calibrated relevance where the model has one, else
the engine's score. `filters` takes LlamaIndex's MetadataFilters.
"""

from __future__ import annotations

from typing import Any

try:
    from llama_index.core.retrievers import BaseRetriever
    from llama_index.core.schema import NodeRelationship, NodeWithScore, QueryBundle, RelatedNodeInfo, TextNode
    from llama_index.core.vector_stores.types import FilterCondition, FilterOperator, MetadataFilters
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("the LlamaIndex retriever needs llama-index-core: pip install llama-index-core") from exc

from .calls import blocking, call

# Where a chunk sits in its document and how it was stored: for citing and bookkeeping, not for
# the LLM's prompt or an embedder's input.
BOOKKEEPING = ["doc_id", "chunk", "start_char", "end_char", "content_hash", "record_id", "matched_chunks"]
_OPERATORS = {FilterOperator.EQ: "$eq", FilterOperator.NE: "$ne", FilterOperator.GT: "$gt",
              FilterOperator.GTE: "$gte", FilterOperator.LT: "$lt", FilterOperator.LTE: "$lte",
              FilterOperator.IN: "$in", FilterOperator.NIN: "$nin"}


def to_node(hit) -> NodeWithScore:
    doc_id = str(hit.metadata.get("doc_id", hit.id))
    node = TextNode(id_=hit.id, text=hit.text, metadata=dict(hit.metadata),
                    relationships={NodeRelationship.SOURCE: RelatedNodeInfo(node_id=doc_id)},
                    excluded_llm_metadata_keys=list(BOOKKEEPING), excluded_embed_metadata_keys=list(BOOKKEEPING))
    # The calibrated relevance where the model has one: a probability on the same scale for every
    # query, which SimilarityPostprocessor(similarity_cutoff=...) can threshold; else the score.
    relevance = getattr(hit, "relevance", None)
    return NodeWithScore(node=node, score=hit.score if relevance is None else relevance)


def engine_filter(filters: MetadataFilters | dict | None) -> dict | None:
    """LlamaIndex's MetadataFilters in the engine's filter language (index/filters.py): ==, !=,
    >, >=, <, <=, in, nin; and / or, nested. Other operators are a ValueError that says so."""
    if filters is None or isinstance(filters, dict):
        return filters
    parts = []
    for f in filters.filters:
        if isinstance(f, MetadataFilters):
            parts.append(engine_filter(f))
            continue
        op = _OPERATORS.get(f.operator)
        if op is None:
            raise ValueError(f"filter operator {f.operator.value!r} has no equivalent here; use one of "
                             f"{[o.value for o in _OPERATORS]}")
        parts.append({f.key: {op: list(f.value) if op in ("$in", "$nin") else f.value}})
    if filters.condition == FilterCondition.OR:
        return {"$or": parts}
    if filters.condition not in (None, FilterCondition.AND):
        raise ValueError(f"filter condition {filters.condition.value!r} has no equivalent here; use and / or")
    return parts[0] if len(parts) == 1 else {"$and": parts}


class LFM2Retriever(BaseRetriever):
    """Chunks (or, with per_document, one best chunk per document) for a query. `filters`: a
    MetadataFilters (LlamaIndex's) or the engine's own filter dict."""

    def __init__(self, client: Any, k: int = 10, mode: str = "hybrid", filter: dict | None = None,
                 per_document: bool = False, filters: MetadataFilters | None = None, **kwargs: Any) -> None:
        if filter is not None and filters is not None:
            raise ValueError("give `filter` (the engine's dict) or `filters` (MetadataFilters), not both")
        self.client, self.k, self.mode, self.per_document = client, k, mode, per_document
        self.filter = engine_filter(filters if filters is not None else filter)
        super().__init__(**kwargs)

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        hits = self.client.search(query_bundle.query_str, **self._settings())
        return [to_node(h) for h in blocking(hits, "aretrieve")]

    async def _aretrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        return [to_node(h) for h in await call(self.client.search, query_bundle.query_str, **self._settings())]

    def _settings(self) -> dict[str, Any]:
        return {"k": self.k, "filter": self.filter, "mode": self.mode, "per_document": self.per_document}
