"""`lfm2-search mcp`: the MCP server driven by the official SDK's own client over stdio (the
command an agent launches) and in-process."""

import asyncio
import json
import sys
from pathlib import Path

import pytest

pytest.importorskip("mcp", reason="the MCP server needs the mcp package")

from mcp import Client
from mcp.client.stdio import StdioServerParameters

from lfm2_retrieval.engine import SearchEngine, TextDocument

pytestmark = pytest.mark.slow  # starts MCP servers as processes


def structured(result):
    assert not result.is_error, result.content
    return result.structured_content or json.loads(result.content[0].text)


def test_stdio_server_tools(tmp_path, pylate_tiny_dir):
    index = tmp_path / "idx"
    engine = SearchEngine.open(index, model=str(pylate_tiny_dir), create=True)
    engine.upsert([TextDocument("ops", "Rotate the signing keys every month.", {"lang": "en"})])
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "lfm2_retrieval.cli", "mcp", "--index", str(index)],
        cwd=str(Path(__file__).parents[1]),
    )

    async def run():
        async with Client(params, read_timeout_seconds=120) as client:
            tools = {t.name: t for t in (await client.list_tools()).tools}
            assert set(tools) == {"search", "add_documents", "delete_documents", "index_info"}
            schema = tools["search"].input_schema["properties"]
            assert schema["mode"]["enum"] == ["hybrid", "semantic", "lexical", "dense"]
            assert (schema["k"]["minimum"], schema["k"]["maximum"]) == (1, 100)
            assert all(p.get("description") for p in schema.values())  # every parameter explained
            assert tools["search"].annotations.read_only_hint and tools["delete_documents"].annotations.destructive_hint
            assert not tools["add_documents"].annotations.read_only_hint
            added = structured(await client.call_tool("add_documents", {"documents": [
                {"id": "faq", "text": "Hold the reset button for five seconds.", "metadata": {"lang": "en"}}]}))
            assert added["documents"] == 1
            hits = structured(await client.call_tool("search", {"query": "reset button", "k": 2, "mode": "lexical",
                                                                "filter": {"lang": "en"}}))["hits"]
            assert hits[0]["doc_id"] == "faq" and hits[0]["score"] > 0 and hits[0]["lang"] == "en"
            assert set(hits[0]) <= {"id", "score", "relevance", "text", "source", "title", "section", "page", "lang",
                                    "doc_id"}
            later = structured(await client.call_tool("search", {"query": "reset button", "k": 2, "mode": "lexical",
                                                                 "filter": {"lang": "en"}, "offset": 1}))["hits"]
            assert [h["id"] for h in later] == [h["id"] for h in hits[1:]]  # the next page
            bad = await client.call_tool("search", {"query": "x", "filter": {"lang": {"$regex": "e"}}})
            assert bad.is_error and "$regex" in bad.content[0].text
            deleted = structured(await client.call_tool("delete_documents", {"ids": ["faq", "nope"]}))
            assert deleted["deleted_chunks"] == {"faq": 1, "nope": 0}
            info = structured(await client.call_tool("index_info", {}))
            assert info["index"]["chunks"] == 1 and info["status"] == "ok"
    asyncio.run(run())


def start_http(index: Path, env: dict | None = None):
    """`lfm2-search mcp --http` on a free port; (process, url) once it listens."""
    import os
    import socket
    import subprocess
    import time

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "lfm2_retrieval.cli", "mcp", "--index", str(index), "--http",
                             "--port", str(port)], cwd=Path(__file__).parents[1], stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **(env or {})})
    deadline = time.time() + 60
    while time.time() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return proc, f"http://127.0.0.1:{port}/mcp"
        assert proc.poll() is None, proc.stderr.read()
        time.sleep(0.2)
    proc.kill()
    raise AssertionError("the MCP server did not listen within 60 s")


def test_streamable_http_server(tmp_path, pylate_tiny_dir):
    index = tmp_path / "idx"
    engine = SearchEngine.open(index, model=str(pylate_tiny_dir), create=True)
    engine.upsert([TextDocument("ops", "Rotate the signing keys every month.")])
    proc, url = start_http(index, {"LFM2_SEARCH_API_KEY": ""})
    try:
        async def run():
            async with Client(url, read_timeout_seconds=60) as client:
                hits = structured(await client.call_tool("search", {"query": "signing keys", "mode": "lexical"}))
                assert hits["hits"][0]["doc_id"] == "ops"
        asyncio.run(run())
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_streamable_http_honours_the_api_key(tmp_path, pylate_tiny_dir):
    """With LFM2_SEARCH_API_KEY set, an unauthenticated add_documents once succeeded."""
    import httpx

    index = tmp_path / "idx"
    SearchEngine.open(index, model=str(pylate_tiny_dir), create=True)
    proc, url = start_http(index, {"LFM2_SEARCH_API_KEY": "mcp-key"})
    initialize = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
                  "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                             "clientInfo": {"name": "test", "version": "1"}}}
    headers = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
    try:
        refused = httpx.post(url, json=initialize, headers=headers, timeout=30)
        wrong = httpx.post(url, json=initialize, headers={**headers, "authorization": "Bearer nope"}, timeout=30)
        allowed = httpx.post(url, json=initialize, headers={**headers, "authorization": "Bearer mcp-key"}, timeout=30)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert refused.status_code == 401 and refused.json()["error"] == "unauthorized"
    assert wrong.status_code == 401
    assert allowed.status_code == 200 and "lfm2-search" in allowed.text
