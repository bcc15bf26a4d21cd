"""The frameworks RAG code is written in, over any client of lfm2_retrieval.client (`Client` or
`AsyncClient` for a server, `LocalClient` for an index in this process):

    lfm2_retrieval.integrations.langchain   LFM2Retriever (a BaseRetriever) and
                                            LFM2SearchVectorStore (a VectorStore; the engine embeds)
    lfm2_retrieval.integrations.llamaindex  LFM2Retriever, a llama-index-core BaseRetriever

Each needs its framework (pip install langchain-core / llama-index-core); this package does not.
"""
