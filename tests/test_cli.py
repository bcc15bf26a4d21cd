"""The `lfm2-search` command line, end to end on a tiny random-weight model."""

import json
import time

import numpy as np
import pytest
from typer.testing import CliRunner

from file_fixtures import write_corpus
from lfm2_retrieval.cli import app
from lfm2_retrieval.index import MultiVectorIndex

runner = CliRunner()


def hits_of(output: str) -> list[dict]:
    """The hits of `search --json`, whose output is POST /search's body."""
    return json.loads(output)["results"][0]["hits"]


def run(*args, ok=True):
    result = runner.invoke(app, [str(a) for a in args])
    if ok:
        assert result.exit_code == 0, result.output
    return result


def test_help_teaches():
    out = run("--help").output
    for command in ("index", "search", "info", "list", "delete", "optimize", "serve", "model-info"):
        assert command in out
    assert "lfm2-search index ./docs" in run("index", "--help").output.replace("\n", " ")
    assert "--filter" in run("search", "--help").output


def test_model_info(pylate_tiny_dir):
    info = json.loads(run("model-info", pylate_tiny_dir, "--json").output)
    assert info["embedding dim"] == 32 and info["mode"] == "causal"
    assert info["query / document prefix"] == "'[Q] ' / '[D] '"


def test_model_info_on_a_missing_model_fails_clearly(tmp_path):
    result = run("model-info", tmp_path / "nowhere", ok=False)
    assert result.exit_code == 1 and "not a folder" in result.output


def test_train_with_a_missing_start_model_fails_before_any_data_work(tmp_path):
    started = time.perf_counter()
    result = run("train", "--set", f"output_dir={tmp_path / 'run'}", "--set", f"init_from={tmp_path / 'nowhere'}",
                 "--set", f"shared_data={tmp_path / 'no-data'}", ok=False)
    assert result.exit_code == 1 and "not a folder" in result.output
    assert time.perf_counter() - started < 30  # not after reading and mining the training data
    assert "init_from" in run("train", "--help").output


def test_serve_on_a_busy_port_fails_clearly_before_loading_anything(tmp_path):
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run("serve", "--index", tmp_path / "none", "--port", port, ok=False)
    assert result.exit_code == 1 and "cannot listen on 127.0.0.1" in result.output and "--port" in result.output


@pytest.fixture(scope="module")
def indexed(tmp_path_factory, pylate_tiny_dir):
    root = tmp_path_factory.mktemp("cli")
    files = write_corpus(root / "docs")
    index = root / "idx"
    summary = json.loads(run("index", root / "docs", "--index", index, "--model", pylate_tiny_dir, "--json").output)
    return files, index, summary


def test_index_summary(indexed):
    files, index, summary = indexed
    assert summary["files_indexed"] == 11 and summary["chunks_added"] == summary["index_chunks"] > 11
    assert summary["skipped"][0]["path"].endswith("blob.txt") and summary["unsupported"] == {".png": 1}
    # The index remembers its model: later commands need no --model.
    assert MultiVectorIndex(index).manifest.model_source


def test_search_table_and_json(indexed):
    files, index, _ = indexed
    table = run("search", "volcanoes and magma", "--index", index, "-k", 3).output
    assert "results for" in table and "score" in table
    hits = hits_of(run("search", "rivers", "--index", index, "--json", "--filter",
                          '{"lang": "fr", "source": {"$glob": "*.csv"}}').output)
    assert len(hits) == 1 and hits[0]["text"] == "Les rivières coulent."
    assert set(hits[0]) == {"id", "score", "text", "metadata"} and hits[0]["metadata"]["source"].endswith("table.csv")
    # The JSON of POST /search: results per query, the commit, the time taken.
    body = json.loads(run("search", "rivers", "--index", index, "--json").output)
    assert set(body) == {"results", "commit", "took_ms"} and body["results"][0]["query"] == "rivers"


def test_search_errors(indexed, tmp_path):
    _, index, _ = indexed
    assert "not valid JSON" in run("search", "x", "--index", index, "--filter", "{lang", ok=False).output
    assert "unknown operator" in run("search", "x", "--index", index, "--filter", '{"a": {"$like": 1}}',
                                     ok=False).output
    assert "empty" in run("search", "  ", "--index", index, ok=False).output
    missing = run("search", "x", "--index", tmp_path / "none", ok=False)
    assert missing.exit_code == 1 and "no index" in missing.output and "lfm2-search index" in missing.output
    # Another model than the one that built it (as after an upgrade changes the embedded model):
    # a clear error that says the ways out, and lexical search still answers.
    other = run("search", "rivers", "--index", index, "--model", "lfm2_retrieval/models/default", ok=False)
    assert other.exit_code == 1 and "was built with a model" in other.output and "--model" in other.output
    assert "results for" in run("search", "rivers", "--index", index, "--model", "lfm2_retrieval/models/default",
                                "--mode", "lexical").output


def test_no_model_anywhere_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.delenv("LFM2_SEARCH_MODEL", raising=False)
    monkeypatch.setattr("lfm2_retrieval.model.locations.EMBEDDED_MODEL_DIR", tmp_path / "absent")
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a.txt").write_text("text")
    result = run("index", tmp_path / "d", "--index", tmp_path / "idx", ok=False)
    assert result.exit_code == 1 and "--model" in result.output


def test_info_and_list(indexed):
    files, index, summary = indexed
    info = json.loads(run("info", "--index", index, "--json").output)
    assert info["chunks"] == summary["index_chunks"] and info["source files"] == 11
    lines = [json.loads(line) for line in run("list", "--index", index, "--json", "--limit", 0).output.splitlines()]
    assert sum(row["chunks"] for row in lines) == summary["index_chunks"]
    assert info["documents"] == len(lines)  # files and records, as `list` shows them
    assert any(row["doc_id"].endswith("items.json#j1") for row in lines)
    assert "documents in" in run("list", "--index", index).output


def test_reindex_delete_optimize(tmp_path, pylate_tiny_dir):
    docs = tmp_path / "docs"
    docs.mkdir()
    for i in range(6):
        (docs / f"n{i}.md").write_text(f"# Note {i}\n\n" + "words about the sea and ships. " * 30)
    index = tmp_path / "idx"
    run("index", docs, "--index", index, "--model", pylate_tiny_dir)
    again = json.loads(run("index", docs, "--index", index, "--json").output)
    assert again["files_indexed"] == 0 and again["files_unchanged"] == 6

    before = MultiVectorIndex(index).stats()
    out = run("delete", docs / "n0.md", "--index", index).output
    assert "deleted" in out
    assert MultiVectorIndex(index).stats()["chunks"] < before["chunks"]
    assert run("delete", "no-such-id", "--index", index, ok=False).exit_code == 1

    out = run("optimize", "--index", index).output
    assert "optimized" in out and MultiVectorIndex(index).stats()["deleted"] == 0
    hits = hits_of(run("search", "ships", "--index", index, "--json").output)
    assert hits and all(not h["metadata"]["source"].endswith("n0.md") for h in hits)


def test_index_of_a_missing_path(tmp_path):
    result = run("index", tmp_path / "nope", ok=False)
    assert result.exit_code == 1 and "does not exist" in result.output


def test_info_on_a_bare_index(tmp_path):
    index = MultiVectorIndex.create(tmp_path / "idx", dim=16, nbits=2)
    rng = np.random.default_rng(0)
    index.add([f"d{i}" for i in range(50)], [rng.standard_normal((5, 16)).astype(np.float32) for _ in range(50)])
    info = json.loads(run("info", "--index", tmp_path / "idx", "--json").output)
    assert info["documents"] == info["chunks"] == 50


def test_the_embedded_default_model_needs_no_flag(tmp_path, monkeypatch):
    from lfm2_retrieval.model.locations import EMBEDDED_MODEL_DIR, embedded_model_available

    assert embedded_model_available() and (EMBEDDED_MODEL_DIR / "README.md").exists()  # with its model card
    monkeypatch.delenv("LFM2_SEARCH_MODEL", raising=False)
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a.txt").write_text("Lighthouses guide ships along rocky coasts at night.")
    (tmp_path / "d" / "b.txt").write_text("東京タワーは高さ333メートルの電波塔です。")
    run("index", tmp_path / "d", "--index", tmp_path / "idx")
    assert MultiVectorIndex(tmp_path / "idx").manifest.model_source == str(EMBEDDED_MODEL_DIR)
    hits = hits_of(run("search", "ships and lighthouses", "--index", tmp_path / "idx", "--json").output)
    assert [h["metadata"]["source"].endswith("a.txt") for h in hits][0]


def test_a_full_disk_is_a_clear_error_and_keeps_the_last_commit(tmp_path, pylate_tiny_dir, monkeypatch):
    """Once a raw 'OSError: [Errno 28]' traceback that did not say whether the index survived."""
    import errno

    import lfm2_retrieval.index.segment as segment_module

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.md").write_text("# A\n\nTides follow the moon.")
    index = tmp_path / "idx"
    run("index", docs, "--index", index, "--model", pylate_tiny_dir)
    commit = MultiVectorIndex(index).commit
    (docs / "b.md").write_text("# B\n\nVolcanoes erupt.")

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(index / "segments"))

    monkeypatch.setattr(segment_module, "publish_dir", full)
    result = run("index", docs, "--index", index, ok=False)
    assert result.exit_code == 1 and "Traceback" not in result.output
    message = " ".join(result.output.split())
    assert "no space left" in message and f"intact at commit {commit}" in message and "run the same command" in message
    monkeypatch.undo()
    assert MultiVectorIndex(index).commit == commit  # readable, unchanged
    again = json.loads(run("index", docs, "--index", index, "--json").output)
    assert again["files_indexed"] == 1


def test_ids_and_sources_as_the_tables_show_them(tmp_path, pylate_tiny_dir, monkeypatch):
    """`list` shows docs/faq.jsonl#faq-2 (relative), search --json and list --json too; delete and
    --filter take it (they once needed the absolute path)."""
    monkeypatch.chdir(tmp_path)
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "faq.jsonl").write_text(
        '{"id": "faq-1", "text": "Reset the router."}\n{"id": "faq-2", "text": "Rotate the keys."}\n'
    )
    (docs / "ops.md").write_text("# Ops\n\nRotate the keys every month.")
    run("index", "docs", "--index", "idx", "--model", pylate_tiny_dir)
    listed = run("list", "--index", "idx").output
    assert "docs/faq.jsonl#faq-2" in listed
    hits = hits_of(run("search", "keys", "--index", "idx", "--json", "--filter", '{"source": "docs/ops.md"}').output)
    assert hits and {h["metadata"]["source"] for h in hits} == {"docs/ops.md"}
    assert {h["id"] for h in hits} == {"docs/ops.md#0"}
    hits = hits_of(run("search", "keys", "--index", "idx", "--json",
                          "--filter", '{"source": {"$in": ["docs/faq.jsonl"]}}').output)
    assert hits and all(h["metadata"]["source"].endswith("faq.jsonl") for h in hits)
    # A folder prefix or a glob, relative to here, picks files the same way.
    for filter_ in ('{"source": {"$prefix": "docs/o"}}', '{"source": {"$glob": "docs/*.md"}}',
                    '{"source": {"$glob": "*/ops.*"}}'):
        hits = hits_of(run("search", "keys", "--index", "idx", "--json", "--filter", filter_).output)
        assert hits and {h["metadata"]["source"] for h in hits} == {"docs/ops.md"}, filter_
    assert "deleted 1 chunk" in run("delete", "docs/faq.jsonl#faq-2", "--index", "idx").output
    left = {json.loads(line)["doc_id"] for line in run("list", "--index", "idx", "--json").output.splitlines()}
    assert left == {"docs/faq.jsonl#faq-1", "docs/ops.md"}
    (docs / "ops.md").unlink()  # a file already gone is still deleted by the name the table showed
    assert "deleted 1 chunk" in run("delete", "docs/ops.md", "--index", "idx").output


def test_shard_then_use_the_sharded_index_as_any_other(indexed, tmp_path):
    """lfm2-search shard, then search, info, index (incremental), delete, optimize and check on
    the sharded index, as on the one it came from."""
    files, index, _ = indexed
    sharded = tmp_path / "sharded"
    summary = json.loads(run("shard", "--shards", 3, "--index", index, "--out", sharded, "--json").output)
    assert summary["shards"] == 3 and sum(summary["per shard"]) == summary["chunks"]
    for query in ("volcanoes and magma", "rivers"):
        a = hits_of(run("search", query, "--index", index, "--json").output)
        b = hits_of(run("search", query, "--index", sharded, "--json").output)
        assert [h["id"] for h in a] == [h["id"] for h in b]
    info = json.loads(run("info", "--index", sharded, "--json").output)
    assert info["shards"] == 3 and info["chunks"] == summary["chunks"]
    again = json.loads(run("index", files["md"].parent, "--index", sharded, "--json").output)
    assert again["files_indexed"] == 0 and again["files_unchanged"] == 11  # the split kept what ingestion needs
    assert "deleted" in run("delete", files["md"], "--index", sharded).output
    assert "optimized" in run("optimize", "--index", sharded).output
    report = json.loads(run("check", "--index", sharded, "--full", "--json").output)
    assert report["ok"] and any(part.startswith("shard-002/") for part in report["checked"])
    assert run("shard", "--shards", 2, "--index", sharded, ok=False).exit_code == 1  # already sharded
    assert run("shard", "--shards", 2, "--index", index, "--out", sharded, ok=False).exit_code == 1  # not empty


def test_the_progress_bar_ends_on_the_summary_s_rate(tmp_path, pylate_tiny_dir):
    """The bar's tokens/s and the summary's once disagreed (the bar stopped before the commits)."""
    import os
    import re
    import subprocess
    import sys

    docs = tmp_path / "docs"
    docs.mkdir()
    for i in range(12):
        (docs / f"note{i}.txt").write_text(f"Note {i} about gardens, weather and the soil in spring.")
    done = subprocess.run([sys.executable, "-m", "lfm2_retrieval.cli", "index", str(docs), "--index",
                           str(tmp_path / "idx"), "--model", str(pylate_tiny_dir)],
                          capture_output=True, text=True, env={**os.environ, "COLUMNS": "200"}, timeout=300)
    assert done.returncode == 0, done.stderr
    bar = re.findall(r"([\d,]+) tok/s", done.stderr)
    summary = re.search(r"\(([\d,]+) tokens/s\)", done.stdout)
    assert bar and summary and bar[-1] == summary.group(1)


def test_serve_on_ray_says_what_listens_beyond_a_loopback_host(monkeypatch):
    """Ray's own ports ignore --host (docs/distributed.md#rays-own-ports): a local instance behind
    a loopback API says so, and says loudly when Ray's token authentication is off."""
    from lfm2_retrieval.cli.serving import ray_ports_notice

    monkeypatch.delenv("RAY_AUTH_MODE", raising=False)
    notice = ray_ports_notice("127.0.0.1", None)
    assert "every interface" in notice and "token authentication (on by default)" in notice
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    assert "OFF" in ray_ports_notice("localhost", None)
    assert ray_ports_notice("0.0.0.0", None) is None  # the user asked for every interface
    assert ray_ports_notice("127.0.0.1", "auto") is None  # a cluster the user runs


def test_index_on_a_local_ray_says_what_it_opens(tmp_path, monkeypatch):
    """index --ray without --ray-address starts a local Ray instance, whose ports listen on every
    interface: the command says so before it starts (here the start itself is stubbed)."""
    pytest.importorskip("ray")
    import lfm2_retrieval.distributed.encoding as encoding

    def not_started(*args, **kwargs):
        raise RuntimeError("stubbed: no Ray instance in this test")

    monkeypatch.setattr(encoding, "RayEncoding", not_started)
    monkeypatch.delenv("RAY_AUTH_MODE", raising=False)
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.md").write_text("# A\n\nsome text to index")
    told = CliRunner().invoke(app, ["index", str(docs), "--index", str(tmp_path / "idx"), "--ray"])
    assert told.exit_code != 0
    assert "listens on every interface" in told.stderr and "token authentication (on by default)" in told.stderr


def test_serve_on_ray_behind_a_loopback_host_starts_no_local_ray_unless_told(tmp_path):
    """Issue 37: `serve --ray --host 127.0.0.1` must not open Ray's control ports on every
    interface. Ray 2.60 cannot bind them to loopback, so the command refuses before Ray starts
    and names the three ways on: --ray-open-ports, --ray-address, or --host 0.0.0.0."""
    import sys

    for host in ("127.0.0.1", "localhost"):  # 127.0.0.1 is serve's default host
        done = CliRunner().invoke(app, ["serve", "--index", str(tmp_path / "none"), "--ray", "--host", host])
        assert done.exit_code != 0
        assert "--ray-open-ports" in done.output and "--ray-address" in done.output and "every interface" in done.output
    assert "ray" not in sys.modules or not __import__("ray").is_initialized()
    # Told to, it goes on (to the next check here: the index is not a sharded one).
    told = CliRunner().invoke(app, ["serve", "--index", str(tmp_path / "none"), "--ray", "--ray-open-ports"])
    assert "--ray-open-ports" not in told.output and "not a sharded index" in told.output
