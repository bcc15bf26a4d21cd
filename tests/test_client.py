"""The Python clients: the same calls over HTTP (a real server on 127.0.0.1, sync and async) and
in-process (LocalClient), typed results, the server's errors as typed exceptions, retries."""

import asyncio

import httpx
import pytest

from lfm2_retrieval.client import (ApiError, AsyncClient, Client, Conflict, InvalidRequest, LocalClient, NotFound,
                                   Unauthorized, Unreachable)
from lfm2_retrieval.errors import IndexFolderError
from test_api_live import server  # noqa: F401 - the live-server fixture (uvicorn on 127.0.0.1)

pytestmark = pytest.mark.slow  # runs a live server

KEY = "live-key"
DOCS = [
    {
        "id": "faq/1#a",
        "text": "Hold the reset button for five seconds to restart the router.",
        "metadata": {"lang": "en"},
    },
    {"id": "faq-2", "text": "Les clés de signature tournent chaque mois.", "metadata": {"lang": "fr"}},
]


def exercise(client):
    """The calls a RAG backend makes, the same for every client."""
    added = client.add(DOCS)
    assert added.documents == 2 and added.chunks >= 2
    hits = client.search("reset the router", k=3, filter={"lang": "en"})
    assert hits[0].id == "faq/1#a#0" and hits[0].metadata["doc_id"] == "faq/1#a" and hits[0].score > 0
    batches = client.search(["reset the router", "clés de signature"], k=2, mode="lexical")
    assert [b[0].metadata["doc_id"] for b in batches] == ["faq/1#a", "faq-2"]
    assert client.search("router", k=5, per_document=True)[0].metadata["matched_chunks"] >= 1
    explained = client.search("reset the router", k=1, mode="semantic", explain=True)[0]
    assert explained.explain and explained.explain[0].document_span[1] <= len(explained.text)
    assert client.search("reset the router", k=1)[0].explain is None  # only when asked
    facets = client.facets()
    assert facets["chunks"] >= 2 and "en" in facets["lang"]
    with pytest.raises(Conflict) as conflict:
        client.add(DOCS[:1], upsert=False)
    assert conflict.value.error == "already_exists"
    with pytest.raises(InvalidRequest):
        client.search("x", filter={"lang": {"$regex": "e"}})
    with pytest.raises(InvalidRequest):
        client.search("   ")
    with pytest.raises(NotFound):
        client.delete_chunk("faq/1#a")  # a document id is not a chunk id
    assert client.delete_chunk("faq/1#a#0").deleted_chunks == 1  # '/' and '#' in an id travel intact
    client.add(DOCS[:1])
    assert client.delete("faq/1#a").deleted_chunks >= 1
    with pytest.raises(NotFound):
        client.delete("faq/1#a")
    health = client.health()
    assert health.status == "ok" and health.index.chunks >= 1 and health.model.dim > 0


def test_http_client_against_a_real_server(server):  # noqa: F811 - `server` is the fixture imported above
    with Client(server, api_key=KEY) as client:
        exercise(client)
    with Client(server, api_key="wrong") as client, pytest.raises(Unauthorized):
        client.search("x")


def test_async_client_against_a_real_server(server):  # noqa: F811 - `server` is the fixture imported above
    async def run():
        async with AsyncClient(server, api_key=KEY) as client:
            await client.add(DOCS)
            hits = await client.search("reset the router", k=3)
            assert hits[0].metadata["doc_id"] == "faq/1#a"
            assert (await client.delete("faq-2")).deleted_chunks >= 1
            with pytest.raises(NotFound):
                await client.delete("faq-2")
            assert (await client.health()).status == "ok"
            assert (await client.search("reset the router", k=1, mode="semantic", explain=True))[0].explain
            assert (await client.facets())["chunks"] >= 1
    asyncio.run(run())


def test_local_client_makes_the_same_calls(tmp_path, pylate_tiny_dir):
    with pytest.raises(IndexFolderError):  # a missing index is an error unless asked to create one
        LocalClient.open(tmp_path / "typo", model=str(pylate_tiny_dir))
    with LocalClient.open(tmp_path / "idx", model=str(pylate_tiny_dir), create=True) as client:
        exercise(client)


def test_connection_errors_are_retried_then_raised():
    calls = []

    def handler(request):
        calls.append(request.url.path)
        if len(calls) < 3:
            raise httpx.ConnectError("refused")
        return httpx.Response(500, json={"error": "index_damaged", "message": "boom", "detail": {"part": "x"}})

    client = Client("http://test", transport=httpx.MockTransport(handler), backoff=0.001)
    with pytest.raises(ApiError) as failed:
        client.health()
    assert len(calls) == 3 and failed.value.status == 500 and failed.value.error == "index_damaged"
    never = Client(
        "http://test",
        transport=httpx.MockTransport(lambda r: (_ for _ in ()).throw(httpx.ConnectError("x"))),
        retries=2,
        backoff=0.001,
    )
    with pytest.raises(Unreachable) as down:  # a typed error of the client, the transport's as its cause
        never.health()
    assert down.value.status == 0 and down.value.error == "unreachable" and "3 tries" in str(down.value)
    assert isinstance(down.value.__cause__, httpx.ConnectError) and isinstance(down.value, ApiError)
