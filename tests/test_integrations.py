"""LangChain and LlamaIndex retrievers over a real server on 127.0.0.1 and over a local index."""

import asyncio

import pytest

from lfm2_retrieval.client import AsyncClient, Client, LocalClient
from test_api_live import server  # noqa: F401 - the live-server fixture (uvicorn on 127.0.0.1)

pytestmark = pytest.mark.slow  # runs a live server

KEY = "live-key"
DOCS = [
    {"id": "ops", "text": "Rotate the signing keys every month; keep the old ones a week.", "metadata": {"lang": "en"}},
    {"id": "faq", "text": "Hold the reset button for five seconds.", "metadata": {"lang": "en"}},
]


def test_langchain_retriever(server):  # noqa: F811 - `server` is the fixture imported above
    pytest.importorskip("langchain_core", reason="the LangChain retriever needs langchain-core")
    from langchain_core.documents import Document

    from lfm2_retrieval.integrations.langchain import LFM2Retriever

    client = Client(server, api_key=KEY)
    client.add(DOCS)
    retriever = LFM2Retriever(client=client, k=3, filter={"lang": "en"}, mode="lexical")
    docs = retriever.invoke("rotate the signing keys")
    assert isinstance(docs[0], Document) and docs[0].metadata["doc_id"] == "ops"
    assert docs[0].metadata["score"] > 0 and docs[0].metadata["id"] == "ops#0" and "Rotate" in docs[0].page_content
    async_docs = asyncio.run(LFM2Retriever(client=AsyncClient(server, api_key=KEY), k=3).ainvoke("reset button"))
    assert async_docs[0].metadata["doc_id"] == "faq"


def test_llamaindex_retriever(server, tmp_path, pylate_tiny_dir):  # noqa: F811 - `server` is the fixture imported above
    pytest.importorskip("llama_index.core", reason="the LlamaIndex retriever needs llama-index-core")
    from llama_index.core.schema import NodeWithScore

    from lfm2_retrieval.integrations.llamaindex import LFM2Retriever

    Client(server, api_key=KEY).add(DOCS)
    local = LocalClient.open(tmp_path / "idx", model=str(pylate_tiny_dir), create=True)
    for client in (Client(server, api_key=KEY), local):
        if isinstance(client, LocalClient):
            client.add(DOCS)
        nodes = LFM2Retriever(client, k=2, mode="lexical").retrieve("reset button")
        assert isinstance(nodes[0], NodeWithScore) and nodes[0].node.metadata["doc_id"] == "faq"
        assert nodes[0].score > 0 and nodes[0].node.node_id == "faq#0"
    nodes = asyncio.run(LFM2Retriever(AsyncClient(server, api_key=KEY), k=2).aretrieve("signing keys"))
    assert nodes and nodes[0].node.metadata["doc_id"] in ("ops", "faq")


def test_langchain_settings_are_honoured_as_its_users_expect(server, tmp_path, pylate_tiny_dir):  # noqa: F811 - fixture
    pytest.importorskip("langchain_core", reason="the LangChain retriever needs langchain-core")
    from lfm2_retrieval.integrations.langchain import LFM2Retriever

    local = LocalClient.open(tmp_path / "idx", model=str(pylate_tiny_dir), create=True)
    local.add(DOCS + [{"id": f"n{i}", "text": f"note {i} about keys and buttons"} for i in range(12)])
    retriever = LFM2Retriever(client=local, mode="lexical")
    assert len(retriever.invoke("keys buttons")) == 10
    assert len(retriever.invoke("keys buttons", k=1)) == 1  # invoke's k was silently ignored before
    assert len(LFM2Retriever(client=local, mode="lexical", search_kwargs={"k": 2}).invoke("keys")) == 2
    assert len(LFM2Retriever(client=local, mode="lexical", search_kwargs={"k": 3}).invoke("keys", k=1)) == 1
    top = retriever.invoke("rotate signing keys", k=1)[0].metadata["score"]
    kept = LFM2Retriever(client=local, mode="lexical", search_type="similarity_score_threshold",
                         search_kwargs={"score_threshold": top}).invoke("rotate signing keys")
    assert kept and all(d.metadata["score"] >= top for d in kept)
    with pytest.raises(ValueError, match="mmr"):
        LFM2Retriever(client=local, search_type="mmr")
    with pytest.raises(ValueError, match="unknown search settings"):
        LFM2Retriever(client=local, search_kwargs={"fetch_k": 20})
    with pytest.raises(ValueError, match="unknown search settings"):
        retriever.invoke("keys", lambda_mult=0.5)
    # A blocking client under ainvoke runs in a worker thread; an async one under invoke says so.
    assert len(asyncio.run(retriever.ainvoke("keys buttons", k=2))) == 2
    with pytest.raises(TypeError, match="ainvoke"):
        LFM2Retriever(client=AsyncClient(server, api_key=KEY)).invoke("keys")


def test_llamaindex_filters_sources_and_what_the_llm_sees(tmp_path, pylate_tiny_dir):
    pytest.importorskip("llama_index.core", reason="the LlamaIndex retriever needs llama-index-core")
    from llama_index.core.schema import MetadataMode
    from llama_index.core.vector_stores.types import (FilterCondition, FilterOperator, MetadataFilter,
                                                      MetadataFilters)

    from lfm2_retrieval.integrations.llamaindex import LFM2Retriever, engine_filter

    local = LocalClient.open(tmp_path / "idx", model=str(pylate_tiny_dir), create=True)
    local.add([{"id": f"d{i}", "text": f"note {i} about keys", "metadata": {"lang": ["en", "fr", "de"][i % 3],
                                                                             "year": 2020 + i}} for i in range(9)])
    either = MetadataFilters(filters=[MetadataFilter(key="lang", value="en"), MetadataFilter(key="lang", value="fr")],
                             condition=FilterCondition.OR)
    recent = MetadataFilters(filters=[either, MetadataFilter(key="year", value=2023, operator=FilterOperator.GTE)])
    assert engine_filter(recent) == {"$and": [{"$or": [{"lang": {"$eq": "en"}}, {"lang": {"$eq": "fr"}}]},
                                              {"year": {"$gte": 2023}}]}
    nodes = LFM2Retriever(local, k=10, mode="lexical", filters=recent).retrieve("keys")
    assert nodes and all(n.node.metadata["lang"] in ("en", "fr") and n.node.metadata["year"] >= 2023 for n in nodes)
    node = nodes[0].node
    assert node.ref_doc_id == node.metadata["doc_id"]  # the SOURCE relationship: its document
    seen = node.get_content(metadata_mode=MetadataMode.LLM)
    assert "lang" in seen and "start_char" not in seen and "content_hash" not in seen
    with pytest.raises(ValueError, match="text_match"):
        engine_filter(MetadataFilters(filters=[MetadataFilter(key="lang", value="e",
                                                              operator=FilterOperator.TEXT_MATCH)]))
    assert len(asyncio.run(LFM2Retriever(local, k=2, mode="lexical").aretrieve("keys"))) == 2


def test_langchain_vector_store(server, tmp_path, pylate_tiny_dir):  # noqa: F811 - `server` is the fixture imported above
    pytest.importorskip("langchain_core", reason="the LangChain store needs langchain-core")
    from langchain_core.documents import Document
    from langchain_core.vectorstores import VectorStore

    from lfm2_retrieval.integrations.langchain import LFM2SearchVectorStore

    local = LocalClient.open(tmp_path / "idx", model=str(pylate_tiny_dir), create=True)
    store = LFM2SearchVectorStore.from_texts(["Rotate the signing keys every month.", "Hold the reset button."],
                                             embedding=None, metadatas=[{"lang": "en"}, {"lang": "en"}],
                                             ids=["ops", "faq"], client=local, mode="lexical")
    assert isinstance(store, VectorStore)
    added = store.add_documents([Document(page_content="Garden notes on tomatoes.", metadata={"lang": "en"},
                                          id="garden"), Document(page_content="Notes sur les jardins.",
                                                                 metadata={"lang": "fr"})])
    assert added[0] == "garden" and len(added[1]) == 32  # the Document's id, else a new one
    docs = store.similarity_search("signing keys", k=1)
    assert [d.id for d in docs] == ["ops"] and docs[0].metadata["id"] == "ops#0"
    scored = store.similarity_search_with_score("notes", k=5, filter={"lang": "fr"})
    assert [d.metadata["lang"] for d, _ in scored] == ["fr"] and scored[0][1] > 0
    retriever = store.as_retriever(search_kwargs={"k": 1, "filter": {"lang": "en"}})
    assert len(retriever.invoke("notes keys button")) == 1
    hybrid = LFM2SearchVectorStore(local)  # hybrid scores lie in [0, 1]: LangChain's relevance scale
    threshold = hybrid.as_retriever(search_type="similarity_score_threshold",
                                    search_kwargs={"score_threshold": 0.5, "k": 4})
    assert all(d.metadata["score"] >= 0.5 for d in threshold.invoke("reset button"))
    with pytest.raises(ValueError, match="unknown search settings"):
        store.similarity_search("keys", fetch_k=10)
    assert store.delete(["ops"]) is True and store.delete(["ops"]) is False
    assert store.similarity_search("signing keys", k=4) == [] or "ops" not in [
        d.id for d in store.similarity_search("signing keys", k=4)]
    # The async twins: a blocking client in a worker thread, an AsyncClient awaited.
    assert asyncio.run(store.asimilarity_search("reset button", k=1))[0].id == "faq"
    remote = LFM2SearchVectorStore(AsyncClient(server, api_key=KEY), mode="lexical")

    async def remote_round_trip():
        ids = await remote.aadd_texts(["Async notes about lighthouses."], ids=["lighthouse"])
        found = await remote.asimilarity_search("lighthouses", k=1)
        gone = await remote.adelete(ids)
        return found, gone
    found, gone = asyncio.run(remote_round_trip())
    assert found[0].id == "lighthouse" and gone is True
    with pytest.raises(TypeError, match="asimilarity_search"):
        remote.similarity_search("lighthouses")


def test_llamaindex_vector_store_as_its_users_build_an_index(tmp_path, pylate_tiny_dir):
    """LFM2VectorStore under LlamaIndex's own VectorStoreIndex: documents inserted (split into
    nodes by LlamaIndex), retrieved by text with filters, deleted by ref_doc_id; no embedding
    model called by LlamaIndex."""
    pytest.importorskip("llama_index.core", reason="the LlamaIndex vector store needs llama-index-core")
    from llama_index.core import Document
    from llama_index.core.vector_stores.types import ExactMatchFilter, MetadataFilters

    from lfm2_retrieval.integrations.llamaindex import vector_store_index

    local = LocalClient.open(tmp_path / "idx", model=str(pylate_tiny_dir), create=True)
    index = vector_store_index(local, mode="lexical")
    index.insert(Document(text="Rotate the signing keys every month.", doc_id="ops", metadata={"lang": "en"}))
    index.insert(Document(text="Hold the reset button for five seconds: the keys stay.", doc_id="faq",
                          metadata={"lang": "en", "tags": ["a"]}))
    nodes = index.as_retriever(similarity_top_k=2).retrieve("signing keys")
    assert nodes[0].node.ref_doc_id == "ops" and nodes[0].node.get_content().startswith("Rotate")
    assert nodes[0].score >= nodes[-1].score
    only = index.as_retriever(similarity_top_k=2, filters=MetadataFilters(
        filters=[ExactMatchFilter(key="ref_doc_id", value="faq")])).retrieve("signing keys")
    assert [n.node.ref_doc_id for n in only] == ["faq"]
    assert "tags" not in only[0].node.metadata  # lists are not stored: the engine's metadata is scalar
    index.delete_ref_doc("ops")
    assert [n.node.ref_doc_id for n in index.as_retriever(similarity_top_k=5).retrieve("signing keys")] == ["faq"]
