"""An MCP server (Model Context Protocol, the official `mcp` SDK): agents search and maintain an
index through four tools. `lfm2-search mcp --index NAME` serves it over stdio (what desktop
agents launch); `--http` over streamable HTTP on 127.0.0.1, behind `LFM2_SEARCH_API_KEY` when
it is set (agents send `Authorization: Bearer <key>`).

Tools: `search` (query, k, mode, filter, per_document, offset), `add_documents` (id, text,
metadata per document: one atomic commit), `delete_documents` (ids), `index_info` (counts, model,
commit). Every parameter has a type, limits and a description in the tool's schema; the tools
say whether they only read (search, index_info) or destroy (delete_documents). A search answers
compactly: per hit its id, score, text and what an agent needs to cite it (source, title,
section, page, lang), not the chunk's bookkeeping. Bad input is a tool error carrying the
engine's message.
"""

from __future__ import annotations

import hmac
from typing import Annotated, Any, Literal

from pydantic import Field

from . import __version__
from .client import ApiError, LocalClient

INSTRUCTIONS = ("Search a local lfm2-search index of documents (multilingual late-interaction retrieval with "
                "BM25). Use `search` with a question in any language; `filter` narrows by metadata such as "
                '{"lang": "en"} or {"source": {"$prefix": "docs/"}} (file paths relative to the server\'s '
                'folder). Cite hits by their source.')
# What a hit keeps of its metadata: where it comes from, and its document id (what
# delete_documents takes) when that is not its source already.
CITED = ("source", "title", "section", "page", "lang", "doc_id")


def compact(hit) -> dict[str, Any]:
    """A hit as an agent reads it: id, score (rounded), its calibrated relevance where the model
    has one (a probability: what an agent should weigh), text, and where it comes from."""
    where = {key: hit.metadata[key] for key in CITED if hit.metadata.get(key) not in (None, "")}
    if where.get("doc_id") == where.get("source"):
        where.pop("doc_id", None)  # a file's document id is its source: said once
    relevance = {} if getattr(hit, "relevance", None) is None else {"relevance": round(hit.relevance, 3)}
    return {"id": hit.id, "score": round(hit.score, 4), **relevance, "text": hit.text, **where}


def build_server(client: LocalClient):
    """The MCP server over a client (LocalClient: an index in this process)."""
    try:
        from mcp.server.mcpserver import MCPServer
        from mcp.server.mcpserver.exceptions import ToolError
        from mcp.types import ToolAnnotations
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("the MCP server needs the mcp package: pip install mcp") from exc

    server = MCPServer("lfm2-search", instructions=INSTRUCTIONS, version=__version__)
    reads = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False)

    @server.tool(annotations=reads)
    def search(
        query: Annotated[str, Field(min_length=1, max_length=4096, description="What to look for, in any language")],
        k: Annotated[int, Field(ge=1, le=100, description="How many hits (chunks, or documents with "
                                                          "per_document)")] = 10,
        mode: Annotated[Literal["hybrid", "semantic", "lexical", "dense"],
                        Field(description="hybrid (MaxSim and BM25 fused, and dense vectors where the index has "
                                          "them: the best measured), semantic, lexical (exact words, codes, names) "
                                          "or dense (an index with dense vectors)")] = "hybrid",
        filter: Annotated[dict[str, Any] | None,
                          Field(description='Metadata filter, e.g. {"lang": "en"}, {"year": {"$gte": 2020}}, '
                                            '{"source": {"$prefix": "docs/"}}, {"$or": [...]}')] = None,
        per_document: Annotated[bool, Field(description="One hit per document (its best chunk)")] = False,
        offset: Annotated[int, Field(ge=0, le=900, description="Hits to skip first: the next page")] = 0,
    ) -> dict[str, Any]:
        """Search the index; returns hits best first, each with id, score, text, source, title,
        section, page and lang where known."""
        try:
            hits = client.search(query, k=k, mode=mode, filter=filter, per_document=per_document, offset=offset)
        except ApiError as exc:
            raise ToolError(exc.message) from None
        return {"hits": [compact(h) for h in hits]}

    @server.tool(annotations=ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=True,
                                             open_world_hint=False))
    def add_documents(
        documents: Annotated[list[dict[str, Any]], Field(min_length=1, max_length=256, description=(
            'Documents to add or replace, each {"id": str, "text": str, "metadata": {str: str|int|float|bool}}'))],
    ) -> dict[str, Any]:
        """Add or replace documents in one atomic commit (an existing id is replaced)."""
        try:
            return client.add(documents).model_dump()
        except (ApiError, KeyError) as exc:
            raise ToolError(getattr(exc, "message", f"each document needs {exc}")) from None

    @server.tool(annotations=ToolAnnotations(read_only_hint=False, destructive_hint=True, idempotent_hint=True,
                                             open_world_hint=False))
    def delete_documents(
        ids: Annotated[list[str], Field(min_length=1, max_length=256, description="Document ids to delete")],
    ) -> dict[str, Any]:
        """Delete documents (all their chunks) by id; returns the chunks deleted per id (0: none)."""
        deleted = {}
        for doc_id in ids:
            try:
                deleted[doc_id] = client.delete(doc_id).deleted_chunks
            except ApiError:
                deleted[doc_id] = 0
        return {"deleted_chunks": deleted}

    @server.tool(annotations=reads)
    def index_info() -> dict[str, Any]:
        """What is served: the model, and the index's path, chunk and token counts and commit."""
        return client.health().model_dump()

    return server


class RequireKey:
    """ASGI middleware for `mcp --http`: `Authorization: Bearer <key>` on every request."""

    def __init__(self, app, key: str) -> None:
        self.app, self.key = app, key

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http":
            given = dict(scope.get("headers") or []).get(b"authorization", b"").decode("latin-1")
            if not hmac.compare_digest(given.encode(), f"Bearer {self.key}".encode()):
                from starlette.responses import JSONResponse

                answer = JSONResponse({"error": "unauthorized", "message": "a valid API key is required: "
                                       "Authorization: Bearer <key>"}, status_code=401,
                                      headers={"WWW-Authenticate": "Bearer"})
                return await answer(scope, receive, send)
        await self.app(scope, receive, send)


def serve_http(server, host: str, port: int, api_key: str | None) -> None:
    """Streamable HTTP at http://HOST:PORT/mcp, behind the key when there is one."""
    import uvicorn

    app = server.streamable_http_app(host=host)
    uvicorn.run(RequireKey(app, api_key) if api_key else app, host=host, port=port, log_level="warning")
