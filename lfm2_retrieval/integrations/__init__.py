"""Retrievers for the frameworks RAG code is written in, over any client of lfm2_retrieval.client
(`Client` for a server, `LocalClient` for an index in this process):

    lfm2_retrieval.integrations.langchain   LFM2Retriever, a langchain-core BaseRetriever
    lfm2_retrieval.integrations.llamaindex  LFM2Retriever, a llama-index-core BaseRetriever

Each needs its framework (pip install langchain-core / llama-index-core); this package does not.
A VectorStore is left out on purpose: its contract is one vector per text and similarity by that
vector, which late interaction does not have.
"""
