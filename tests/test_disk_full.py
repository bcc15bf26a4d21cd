"""A real full disk: a small tmpfs filled during `index`, `optimize` and `POST /documents`.

Each write must fail with one clear answer (CLI exit 1 and one line; HTTP 507 disk_full), leave
no partial files behind, and leave the index at its previous commit with identical content; once
space is freed the same command succeeds. Mounting needs root (or a user namespace the test
cannot enter from inside pytest): elsewhere the test skips and says so.
"""

import json
import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from lfm2_retrieval.api import ApiSettings, create_app
from lfm2_retrieval.cli import app
from lfm2_retrieval.engine import SearchEngine
from lfm2_retrieval.index import MultiVectorIndex

pytestmark = pytest.mark.slow  # mounts a file system and fills it

DISK_BYTES = 24 << 20


@pytest.fixture()
def small_disk(tmp_path):
    """A DISK_BYTES tmpfs at tmp_path/disk, unmounted afterwards."""
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small tmpfs needs root (the full-disk paths are also tested with an injected ENOSPC)")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={DISK_BYTES}", "tmpfs", str(mount_point)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def fill(disk: Path, leave: int) -> Path:
    """Take all but about `leave` bytes of the disk with one file."""
    filler = disk / f"filler-{uuid.uuid4().hex}"
    free = shutil.disk_usage(disk).free
    with open(filler, "wb") as f:
        remaining = max(0, free - leave)
        block = b"\0" * (1 << 20)
        while remaining > 0:
            n = min(remaining, len(block))
            f.write(block[:n])
            remaining -= n
    return filler


def content(index_path: Path) -> tuple[int, list]:
    index = MultiVectorIndex(index_path)
    return index.commit, sorted((c["id"], c["text"]) for c in index.iter_chunks())


def leftovers(index_path: Path) -> list[str]:
    """Files a failed write left behind (temporary folders and files of writers)."""
    return [p.name for p in index_path.rglob("*") if ".tmp" in p.name]


def write_docs(folder: Path, n: int, words: int = 400, seed: int = 0) -> None:
    folder.mkdir(exist_ok=True)
    vocabulary = "tide moon sea volcano magma crust river delta glacier harbour lighthouse keeper".split()
    for i in range(n):
        text = " ".join(vocabulary[(i * 7 + j * 3 + seed) % len(vocabulary)] + str(j % 50) for j in range(words))
        (folder / f"doc-{seed}-{i}.md").write_text(f"# Document {i}\n\n{text}\n")


def run(*args, ok=True):
    result = CliRunner().invoke(app, [str(a) for a in args])
    if ok:
        assert result.exit_code == 0, result.output
    return result


def test_index_and_optimize_on_a_full_disk(small_disk, tmp_path, pylate_tiny_dir):
    index = small_disk / "idx"
    first = tmp_path / "first"
    write_docs(first, 5)
    run("index", first, "--index", index, "--model", pylate_tiny_dir)
    before = content(index)

    more = tmp_path / "more"
    write_docs(more, 40, words=600, seed=1)
    filler = fill(small_disk, leave=64 << 10)
    result = run("index", first, more, "--index", index, ok=False)
    message = " ".join(result.output.split())
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    assert "no space left" in message and f"intact at commit {before[0]}" in message
    assert content(index) == before and leftovers(index) == []

    result = run("optimize", "--index", index, ok=False)
    assert result.exit_code == 1 and "no space left" in " ".join(result.output.split()), result.output
    assert content(index) == before and leftovers(index) == []

    filler.unlink()  # space again: the same command goes on and finishes
    report = json.loads(run("index", first, more, "--index", index, "--json").output)
    assert report["files_indexed"] == 40 and content(index)[0] > before[0]


def test_post_documents_on_a_full_disk_is_507(small_disk, pylate_tiny_dir):
    engine = SearchEngine.open(small_disk / "idx", model=str(pylate_tiny_dir), create=True)
    with TestClient(create_app(engine, ApiSettings(api_key=None))) as client:
        first = client.post("/documents", json={"documents": [{"id": "tide", "text": "Tides follow the moon."}]})
        assert first.status_code == 200, first.text
        before = content(small_disk / "idx")
        filler = fill(small_disk, leave=32 << 10)
        text = " ".join(f"word{i}" for i in range(12000))  # 4 x 100k characters: within the request limits
        docs = [{"id": f"big-{i}", "text": text[i:]} for i in range(4)]
        answer = client.post("/documents", json={"documents": docs})
        assert answer.status_code == 507, answer.text
        body = answer.json()
        assert body["error"] == "disk_full" and f"intact at commit {before[0]}" in body["message"]
        assert content(small_disk / "idx") == before and leftovers(small_disk / "idx") == []
        # Searches go on from the last commit, and writes work again once there is space.
        assert client.post("/search", json={"query": "moon"}).status_code == 200
        filler.unlink()
        assert client.post("/documents", json={"documents": docs}).status_code == 200
