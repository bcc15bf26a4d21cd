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
            names = {t.name for t in (await client.list_tools()).tools}
            assert names == {"search", "add_documents", "delete_documents", "index_info"}
            added = structured(await client.call_tool("add_documents", {"documents": [
                {"id": "faq", "text": "Hold the reset button for five seconds.", "metadata": {"lang": "en"}}]}))
            assert added["documents"] == 1
            hits = structured(await client.call_tool("search", {"query": "reset button", "k": 2, "mode": "lexical",
                                                                "filter": {"lang": "en"}}))["hits"]
            assert hits[0]["metadata"]["doc_id"] == "faq" and hits[0]["score"] > 0
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


def test_streamable_http_server(tmp_path, pylate_tiny_dir):
    import socket
    import subprocess
    import time

    index = tmp_path / "idx"
    engine = SearchEngine.open(index, model=str(pylate_tiny_dir), create=True)
    engine.upsert([TextDocument("ops", "Rotate the signing keys every month.")])
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "lfm2_retrieval.cli", "mcp", "--index", str(index), "--http",
                             "--port", str(port)], cwd=Path(__file__).parents[1], stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            assert proc.poll() is None, proc.stderr.read()
            time.sleep(0.2)

        async def run():
            async with Client(f"http://127.0.0.1:{port}/mcp", read_timeout_seconds=60) as client:
                hits = structured(await client.call_tool("search", {"query": "signing keys", "mode": "lexical"}))
                assert hits["hits"][0]["metadata"]["doc_id"] == "ops"
        asyncio.run(run())
    finally:
        proc.terminate()
        proc.wait(timeout=10)
