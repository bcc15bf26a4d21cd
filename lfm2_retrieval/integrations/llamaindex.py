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
    from llama_index.core.bridge.pydantic import PrivateAttr
    from llama_index.core.schema import (BaseNode, MetadataMode, NodeRelationship, NodeWithScore, QueryBundle,
                                         RelatedNodeInfo, TextNode)
    from llama_index.core.vector_stores.types import (BasePydanticVectorStore, FilterCondition, FilterOperator,
                                                      MetadataFilters, VectorStoreQuery, VectorStoreQueryResult)
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


MAX_BATCH = 256  # documents a request may hold (the HTTP API's limit)
SCALARS = (str, int, float, bool)


class LFM2VectorStore(BasePydanticVectorStore):
    """An lfm2-search index as a LlamaIndex vector store, over a client (`Client`, `AsyncClient`
    or `LocalClient`). The engine embeds (late interaction and BM25) and searches by the query's
    text, so LlamaIndex's embeddings are not used: `vector_store_index` builds the index with a
    placeholder embedder (LlamaIndex would otherwise reach for OpenAI's),

        index = vector_store_index(client)                # VectorStoreIndex over LFM2VectorStore
        index.insert(Document(text=..., doc_id="manual-7"))
        index.as_retriever(similarity_top_k=5).retrieve("how do I reset it?")
        index.as_query_engine(llm=...)                    # as any LlamaIndex index

    Each node is stored as a document: its id, its text, its scalar metadata and `ref_doc_id`
    (lists and dicts are left out: the engine's metadata is scalar); a node longer than one of
    the engine's chunks is stored as several. `delete(ref_doc_id)` removes every node of that
    document in one commit. Query results are the nodes (their stored ids), with the hits'
    calibrated relevance as similarities where the model has one (else the score)."""

    stores_text: bool = True
    is_embedding_query: bool = False
    mode: str = "hybrid"
    _client: Any = PrivateAttr()

    def __init__(self, client: Any, mode: str = "hybrid", **kwargs: Any) -> None:
        super().__init__(mode=mode, **kwargs)
        self._client = client

    @property
    def client(self) -> Any:
        return self._client

    def add(self, nodes: list[BaseNode], **kwargs: Any) -> list[str]:
        for batch in _node_batches(nodes):
            blocking(self._client.add(batch), "async_add")
        return [n.node_id for n in nodes]

    async def async_add(self, nodes: list[BaseNode], **kwargs: Any) -> list[str]:
        for batch in _node_batches(nodes):
            await call(self._client.add, batch)
        return [n.node_id for n in nodes]

    def delete(self, ref_doc_id: str, **delete_kwargs: Any) -> None:
        blocking(self._client.delete_where({"ref_doc_id": ref_doc_id}), "adelete")

    async def adelete(self, ref_doc_id: str, **delete_kwargs: Any) -> None:
        await call(self._client.delete_where, {"ref_doc_id": ref_doc_id})

    def query(self, query: VectorStoreQuery, **kwargs: Any) -> VectorStoreQueryResult:
        return _result(blocking(self._client.search(query.query_str or "", **self._settings(query)), "aquery"))

    async def aquery(self, query: VectorStoreQuery, **kwargs: Any) -> VectorStoreQueryResult:
        return _result(await call(self._client.search, query.query_str or "", **self._settings(query)))

    def _settings(self, query: VectorStoreQuery) -> dict[str, Any]:
        if not query.query_str:
            raise ValueError("LFM2VectorStore searches by the query's text; LlamaIndex gave only an embedding")
        return {"k": query.similarity_top_k, "filter": engine_filter(query.filters), "mode": self.mode,
                "per_document": True}  # one hit per node: a node stored as several chunks counts once


def vector_store_index(client: Any, mode: str = "hybrid"):
    """A LlamaIndex `VectorStoreIndex` over an lfm2-search index (LFM2VectorStore): inserts,
    deletes, retrievers and query engines as LlamaIndex's users know them."""
    from llama_index.core import VectorStoreIndex
    from llama_index.core.embeddings import MockEmbedding

    # The store reads the query's text, never a vector: the placeholder's 1-number vectors are
    # computed and dropped, and no embedding model is loaded or called.
    return VectorStoreIndex.from_vector_store(LFM2VectorStore(client, mode), embed_model=MockEmbedding(embed_dim=1))


def _node_batches(nodes: list[BaseNode]) -> list[list[dict]]:
    docs = [{"id": n.node_id, "text": n.get_content(metadata_mode=MetadataMode.NONE),
             "metadata": {**{k: v for k, v in n.metadata.items() if isinstance(v, SCALARS)},
                          **({"ref_doc_id": n.ref_doc_id} if n.ref_doc_id else {})}} for n in nodes]
    return [docs[s: s + MAX_BATCH] for s in range(0, len(docs), MAX_BATCH)]


def _result(hits) -> VectorStoreQueryResult:
    """The hits as the nodes they were stored as: the node id, its document as SOURCE."""
    nodes, scores = [], []
    for hit in hits:
        scored = to_node(hit)
        node = scored.node
        node.id_ = str(hit.metadata.get("doc_id", hit.id))  # the node's own id, not the chunk's
        if hit.metadata.get("ref_doc_id"):
            node.relationships = {NodeRelationship.SOURCE: RelatedNodeInfo(node_id=str(hit.metadata["ref_doc_id"]))}
        nodes.append(node)
        scores.append(scored.score)
    return VectorStoreQueryResult(nodes=nodes, similarities=scores, ids=[n.node_id for n in nodes])
