"""Distributed indexing and serving on a local two-node Ray cluster, with the embedded model: a
build whose encoding runs on Ray equals a local build to the bit, incremental runs included; an encoder
actor killed mid-build costs a retry, never a chunk; Ray Serve answers as the local index and a
killed shard replica gives the documented error."""

import numpy as np
import pytest

pytest.importorskip("ray", reason="Ray is an optional extra: pip install -e .[distributed]")

from lfm2_retrieval.engine import SearchEngine
from lfm2_retrieval.ingest import IngestOptions, Ingestor
from lfm2_retrieval.distributed.encoding import RayEncoding

from index_helpers import assert_same_hits

# One worker runs the whole module (pytest -n 2 --dist loadgroup): its cluster is module-scoped,
# and two Ray clusters on 2 cores at once would time each other out.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("ray")]
# The local builds encode 8 chunks a call, as the actors do (group_chunks=8): a few small files
# then make several groups and windows, and the two builds the same to the bit.
SMALL_BATCHES = IngestOptions(encode_batch_chunks=8)

TOPICS = [
    "the river floods in spring",
    "cats sleep most of the day",
    "a recipe for bread with rye flour",
    "how to rotate the API keys",
    "Die Katze schläft auf dem Sofa",
    "東京の天気は晴れです",
    "서울의 지하철 노선도",
    "le train part de Lyon à midi",
    "el museo abre los domingos",
    "Москва — столица России",
]


@pytest.fixture(scope="module")
def cluster():
    """Two Ray nodes of one CPU each on this machine (ray.cluster_utils.Cluster)."""
    import os

    import ray
    from ray.cluster_utils import Cluster

    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"  # no usage report to Ray's servers from the tests
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    c.add_node(num_cpus=1)
    ray.init(address=c.address, log_to_driver=False)
    yield c
    ray.shutdown()
    c.shutdown()


def write_docs(folder, start, n):
    folder.mkdir(exist_ok=True)
    for i in range(start, start + n):
        body = " ".join(f"{TOPICS[(i + j) % len(TOPICS)]} ({i}.{j})." for j in range(4 + i % 9))
        (folder / f"doc-{i:03d}.md").write_text(f"# Page {i}\n\n{body}\n", encoding="utf-8")


def queries():
    return [f"{TOPICS[i % len(TOPICS)]} {i}" for i in range(50)]


def assert_same_index(a: SearchEngine, b: SearchEngine):
    """The same chunks, the same codec and stored vectors to the bit, the same rankings."""
    ids = sorted(c for c, _ in a.chunk_metadata([]))
    assert ids == sorted(c for c, _ in b.chunk_metadata([]))
    assert a.counts.tokens == b.counts.tokens
    for x, y in zip(a.index.vectors(ids), b.index.vectors(ids)):
        assert np.array_equal(x, y)
    for mode in ("semantic", "hybrid"):
        # Hybrid scores of a sharded index differ in the last float32 bits: its BM25 scores are
        # recomputed in float64 with the whole collection's statistics (the same numbers).
        for x, y in zip(a.search(queries(), k=10, mode=mode), b.search(queries(), k=10, mode=mode)):
            assert_same_hits(x, y, tol=1e-6 if mode == "semantic" else 1e-5)


def test_a_distributed_build_equals_a_local_build(cluster, tmp_path):
    docs = tmp_path / "docs"
    write_docs(docs, 0, 60)
    local = SearchEngine.open(tmp_path / "local", create=True)
    Ingestor(local, SMALL_BATCHES).run([docs])
    remote = SearchEngine.open(tmp_path / "remote", create=True)
    encoding = RayEncoding(remote, workers=2, group_chunks=8, window_chunks=40)
    report = Ingestor(remote, encoding=encoding).run([docs])
    assert report.files_indexed == 60 and encoding.windows >= 2  # several datasets, both actors
    assert encoding.compressed_windows == 0  # no codec before the first commit: vectors come back
    assert_same_index(local, remote)
    # Incremental: new, changed and deleted files. The index has a codec now, so the actors are
    # shipped it and send back codes and residuals.
    write_docs(docs, 60, 30)
    (docs / "doc-007.md").write_text("# Page 7\n\nrewritten: the museum opens on Sundays.\n", encoding="utf-8")
    (docs / "doc-008.md").unlink()
    for engine, enc in ((local, None), (remote, encoding)):
        again = Ingestor(engine, SMALL_BATCHES, encoding=enc).run([docs])
        assert (again.files_indexed, again.files_removed, again.files_unchanged) == (31, 1, 58)
    assert encoding.compressed_windows >= 1
    assert_same_index(local, remote)


def test_an_encoder_actor_killed_mid_build_is_retried(cluster, tmp_path):
    docs = tmp_path / "docs"
    write_docs(docs, 0, 40)
    local = SearchEngine.open(tmp_path / "local", create=True)
    Ingestor(local, SMALL_BATCHES).run([docs])
    remote = SearchEngine.open(tmp_path / "remote", create=True)
    marker = tmp_path / "killed"
    encoding = RayEncoding(remote, workers=2, group_chunks=8, env={"LFM2_SEARCH_KILL_ENCODER_ONCE": str(marker)})
    report = Ingestor(remote, SMALL_BATCHES, encoding=encoding).run([docs])
    assert marker.exists(), "an actor was killed"
    assert report.files_indexed == 40 and report.commits == 1
    assert_same_index(local, remote)


def test_a_distributed_build_of_a_sharded_index(cluster, tmp_path):
    """--ray and --shards together: the same documents, in 3 shards, answer as one index."""
    docs = tmp_path / "docs"
    write_docs(docs, 0, 45)
    local = SearchEngine.open(tmp_path / "local", create=True)
    Ingestor(local, SMALL_BATCHES).run([docs])
    remote = SearchEngine.open(tmp_path / "remote", create=True, shards=3)
    Ingestor(remote, SMALL_BATCHES, encoding=RayEncoding(remote, workers=2, group_chunks=8, window_chunks=32)).run(
        [docs]
    )
    assert remote.sharded and all(len(s) > 0 for s in remote.index.shards)
    assert_same_index(local, remote)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ray_serve_answers_as_the_local_index_and_survives_a_killed_shard(cluster, tmp_path):
    """serve --ray: one deployment per shard and an ingress with the same HTTP API. Its answers
    equal the local engine's; /health lists the shards; a shard replica killed while serving
    gives 503 shard_unavailable (or results flagged partial, when allowed), never a hang or a
    500, and Serve brings the shard back."""
    import time

    import httpx
    import ray
    from ray import serve

    from lfm2_retrieval.distributed import serving
    from lfm2_retrieval.shards import split_index

    docs = tmp_path / "docs"
    write_docs(docs, 0, 40)
    local = SearchEngine.open(tmp_path / "local", create=True)
    Ingestor(local).run([docs])
    split_index(local.path, tmp_path / "sharded", n_shards=2)
    port = free_port()
    serving.run(tmp_path / "sharded", port=port, replicas=1,
                api={"shard_timeout_s": 2.0}, shard_cpus=0.25, ingress_cpus=0.25)
    url = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=url, timeout=30) as client:
            for _ in range(60):  # replicas warm up (their first search maps the index) within the 2 s timeout
                if client.post("/search", json={"query": "warm up", "mode": "hybrid"}).status_code == 200:
                    break
                time.sleep(0.5)
            for mode in ("semantic", "hybrid", "lexical"):
                answer = client.post("/search", json={"queries": queries()[:10], "k": 10, "mode": mode}).json()
                for hits, expected in zip(answer["results"], local.search(queries()[:10], k=10, mode=mode)):
                    assert_same_hits(hits["hits"], expected)
            health = client.get("/health").json()
            assert health["status"] == "ok" and [s["name"] for s in health["shards"]] == ["shard-000", "shard-001"]
            assert all(s["replicas"] == 1 for s in health["shards"])
            # Writes go through the ingress's two-phase commit; the shard replicas follow.
            added = client.post("/documents", json={"documents": [{"id": "tea", "text": "green tea from Uji"}]})
            assert added.status_code == 200
            hit = client.post("/search", json={"query": "green tea Uji", "k": 1, "mode": "lexical"}).json()
            assert hit["results"][0]["hits"][0]["metadata"]["doc_id"] == "tea"

            replica = next(a for a in ray.util.list_named_actors(all_namespaces=True)
                           if "shard-001" in a["name"] and "REPLICA" in a["name"].upper())
            ray.kill(ray.get_actor(replica["name"], namespace=replica["namespace"]), no_restart=True)
            statuses, recovered, deadline = [], False, time.monotonic() + 60
            while time.monotonic() < deadline and not recovered:
                started = time.monotonic()
                for body in ({"query": "cats sleep", "k": 5, "mode": "semantic"},
                             {"query": "cats sleep", "k": 5, "mode": "semantic", "allow_partial": True}):
                    r = client.post("/search", json=body)
                    assert time.monotonic() - started < 20, "a request to a dead shard must not hang"
                    statuses.append(r.status_code)
                    assert r.status_code in (200, 503), r.text
                    if r.status_code == 503:
                        assert r.json()["error"] == "shard_unavailable" and "shard-001" in r.json()["message"]
                    elif r.json().get("partial"):
                        assert body.get("allow_partial") and r.json()["missing_shards"] == ["shard-001"]
                    else:
                        recovered = recovered or not body.get("allow_partial")
                time.sleep(0.2)
            assert recovered, f"Serve did not bring shard-001 back (answers: {statuses})"
    finally:
        serve.shutdown()


def test_the_command_line_indexes_on_a_cluster(cluster, tmp_path):
    """lfm2-search index --ray --shards N, as the README has it (this process is already connected
    to the test cluster, so --ray uses it), and --ray-address: the same index as a local run."""
    import json

    from typer.testing import CliRunner

    from lfm2_retrieval.cli import app

    docs = tmp_path / "docs"
    write_docs(docs, 0, 30)
    runner = CliRunner()
    local = runner.invoke(app, ["index", str(docs), "--index", str(tmp_path / "local"), "--json"])
    remote = runner.invoke(app, ["index", str(docs), "--index", str(tmp_path / "remote"), "--shards", "2",
                                 "--ray", "--ray-workers", "2", "--json"])
    remote_3 = runner.invoke(app, ["index", str(docs), "--index", str(tmp_path / "remote-3"), "--shards", "3", "--ray",
                                   "--ray-address", cluster.address, "--json"])
    assert remote_3.exit_code == 0, remote_3.output
    assert local.exit_code == 0 and remote.exit_code == 0, remote.output
    assert "listens on every interface" not in remote.stderr  # it joined this process's cluster: nothing started
    assert json.loads(remote.stdout)["chunks_added"] == json.loads(local.stdout)["chunks_added"]  # logs: stderr
    assert_same_index(SearchEngine.open(tmp_path / "local"), SearchEngine.open(tmp_path / "remote"))
    missing = runner.invoke(
        app, ["serve", "--index", str(tmp_path / "local"), "--ray", "--ray-address", cluster.address]
    )
    assert missing.exit_code == 1 and "not a sharded index" in missing.output  # serve --ray serves shards
