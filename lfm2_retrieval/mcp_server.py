"""An MCP server (Model Context Protocol, the official `mcp` SDK): agents search and maintain an
index through four tools. `lfm2-search mcp --index NAME` serves it over stdio (what desktop
agents launch); `--http` over streamable HTTP on 127.0.0.1.

Tools: `search` (query, k, mode, filter, per_document, offset), `add_documents` (id, text, metadata per
document: one atomic commit), `delete_documents` (ids), `index_info` (counts, model, commit).
Answers are structured (JSON objects); bad input is a tool error carrying the engine's message.
"""

from __future__ import annotations

from typing import Any

from .client import ApiError, LocalClient

INSTRUCTIONS = ("Search a local lfm2-search index of documents (multilingual late-interaction retrieval with "
                "BM25). Use `search` with a question in any language; `filter` narrows by metadata such as "
                '{"lang": "en"} or {"source": {"$prefix": "/path/to/docs/"}}.')


def build_server(client: LocalClient):
    """The MCP server over a client (LocalClient: an index in this process)."""
    try:
        from mcp.server.mcpserver import MCPServer
        from mcp.server.mcpserver.exceptions import ToolError
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("the MCP server needs the mcp package: pip install mcp") from exc

    server = MCPServer("lfm2-search", instructions=INSTRUCTIONS)

    @server.tool()
    def search(query: str, k: int = 10, mode: str = "hybrid", filter: dict[str, Any] | None = None,
               per_document: bool = False, offset: int = 0) -> dict[str, Any]:
        """Search the index. mode: hybrid (default, best measured), semantic or lexical; offset:
        hits to skip (the next page). Returns the hits (chunk id, score, text, metadata with
        source, title, section, lang), best first."""
        try:
            hits = client.search(query, k=k, mode=mode, filter=filter, per_document=per_document, offset=offset)
        except ApiError as exc:
            raise ToolError(exc.message) from None
        return {"hits": [h.model_dump() for h in hits]}

    @server.tool()
    def add_documents(documents: list[dict[str, Any]]) -> dict[str, Any]:
        """Add or replace documents, each {"id", "text", "metadata"?}, in one atomic commit."""
        try:
            return client.add(documents).model_dump()
        except (ApiError, KeyError) as exc:
            raise ToolError(getattr(exc, "message", f"each document needs {exc}")) from None

    @server.tool()
    def delete_documents(ids: list[str]) -> dict[str, Any]:
        """Delete documents (all their chunks) by id; returns the chunks deleted per id (0: none)."""
        deleted = {}
        for doc_id in ids:
            try:
                deleted[doc_id] = client.delete(doc_id).deleted_chunks
            except ApiError:
                deleted[doc_id] = 0
        return {"deleted_chunks": deleted}

    @server.tool()
    def index_info() -> dict[str, Any]:
        """What is served: the model, and the index's path, chunk and token counts and commit."""
        return client.health().model_dump()

    return server
