"""Damaged index files: each kind is refused with an error naming it, `check` reports it, and
`check --repair` leaves a searchable index of what was sound (index/integrity.py)."""

import json
import shutil

import numpy as np
import pytest
from typer.testing import CliRunner

from index_helpers import clustered_corpus, queries_from
from lfm2_retrieval.cli import app
from lfm2_retrieval.index import IndexDamagedError, MultiVectorIndex, check_index, repair_index

DIM = 32


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    """Two segments (two commits of 60 documents) and a deletion."""
    docs = clustered_corpus(120, dim=DIM, seed=3)
    path = tmp_path_factory.mktemp("integrity") / "idx"
    index = MultiVectorIndex.create(path, dim=DIM, nbits=2)
    for part in (0, 1):
        ids = [f"d{i}" for i in range(part * 60, part * 60 + 60)]
        with index.writer() as w:
            w.add(ids, docs[part * 60: part * 60 + 60], [f"text of {i}" for i in ids],
                  [{"source": f"/docs/{'a' if part == 0 else 'b'}.md"} for _ in ids])
    index.delete(["d5"])
    return path, docs


@pytest.fixture()
def damaged(pristine, tmp_path):
    path, docs = pristine
    copy = tmp_path / "idx"
    shutil.copytree(path, copy)
    return copy, docs


def second_segment(path):
    manifest = json.loads((path / "manifest.json").read_text())
    return path / "segments" / manifest["segments"][1]["name"]


def flip(path, offset=None):
    data = bytearray(path.read_bytes())
    i = len(data) // 2 if offset is None else offset
    data[i] ^= 0x5A
    path.write_bytes(bytes(data))


def test_a_sound_index_checks_clean_quick_and_full(pristine):
    path, _ = pristine
    for full in (False, True):
        report = check_index(path, full=full)
        assert report.problems == [] and len(report.checked) == 4  # codec, tombstones, two segments


# (file, damage, found when opening as well as by --full)
KINDS = [
    ("records.bin", "truncate", True),
    ("records.bin", "flip", False),
    ("residuals.bin", "flip", False),
    ("codes.bin", "out-of-range", True),
    ("codes.bin", "flip", False),
    ("ivf_lists.npy", "flip", False),
    ("ivf_index.npy", "truncate", True),
    ("doc_offsets.npy", "flip", False),
    ("docs.parquet", "truncate", True),
    ("bm25", "flip", False),
    ("segment.json", "flip", True),
]


@pytest.mark.parametrize("name,damage,at_open", KINDS)
def test_each_damaged_segment_file_is_named_and_repaired(damaged, name, damage, at_open):
    path, docs = damaged
    seg = second_segment(path)
    target = seg / name
    if name == "bm25":
        target = max((p for p in (seg / "bm25").rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)
    if damage == "truncate":
        target.write_bytes(target.read_bytes()[:-7])
    elif damage == "out-of-range":
        codes = np.fromfile(target, dtype=np.uint16)
        codes[len(codes) // 2] = 65535
        codes.tofile(target)
    else:
        flip(target)

    if at_open:
        with pytest.raises(IndexDamagedError, match=seg.name) as raised:
            MultiVectorIndex(path)
        assert "lfm2-search check" in str(raised.value)
    report = check_index(path, full=True)
    assert report.damaged_segments == [seg.name], report.problems
    assert any(seg.name in p.part for p in report.problems)

    outcome = repair_index(path, report)
    assert outcome["dropped_segments"] == [seg.name]
    index = MultiVectorIndex(path)
    assert check_index(path, full=True).problems == []
    assert len(index) == 59 and outcome["chunks"] == 59  # the first segment's, less the deleted one
    hits = index.search(queries_from(docs[:60], 1)[0], k=5)
    assert hits and all(int(h.id[1:]) < 60 for h in hits)  # nothing from the damaged segment
    if name not in ("docs.parquet", "segment.json"):
        assert outcome["sources"] == ["/docs/b.md"]  # what the next `index` run reads again


@pytest.mark.parametrize("part", ["codec", "tombstones"])
def test_a_damaged_codec_or_deletion_list_drops_every_segment(damaged, part):
    path, _ = damaged
    manifest = json.loads((path / "manifest.json").read_text())
    if part == "codec":
        target = path / manifest["codec"] / "centroids.npy"
        target.write_bytes(target.read_bytes()[:-16])
        with pytest.raises(IndexDamagedError, match="centroids.npy"):
            MultiVectorIndex(path)
    else:
        flip(path / manifest["tombstones"], offset=-3)
    report = check_index(path, full=True)
    assert report.problems and not report.damaged_segments
    repair_index(path, report)
    index = MultiVectorIndex(path)
    assert len(index) == 0 and check_index(path, full=True).problems == []


def test_a_damaged_manifest_and_the_cli(damaged):
    path, _ = damaged
    runner = CliRunner()
    ok = runner.invoke(app, ["check", "--index", str(path)])
    assert ok.exit_code == 0 and "ok" in ok.output
    flip(second_segment(path) / "residuals.bin")
    quick = runner.invoke(app, ["check", "--index", str(path)])
    assert quick.exit_code == 0  # sizes and ranges are fine: only --full reads every byte
    full = runner.invoke(app, ["check", "--index", str(path), "--full", "--json"])
    assert full.exit_code == 1 and json.loads(full.output)["problems"][0]["part"].endswith("residuals.bin")
    repaired = runner.invoke(app, ["check", "--index", str(path), "--repair"])
    assert repaired.exit_code == 1 and "repaired" in repaired.output and "1 file(s)" in repaired.output
    assert runner.invoke(app, ["check", "--index", str(path), "--full"]).exit_code == 0

    (path / "manifest.json").write_text("{not json")
    info = runner.invoke(app, ["info", "--index", str(path)])
    assert info.exit_code == 2 and "manifest.json" in info.output and "lfm2-search check" in info.output
    assert "Traceback" not in info.output


def test_tiered_merging_keeps_segments_few_and_results_identical(tmp_path):
    from lfm2_retrieval.index.writer import MAX_SEGMENTS

    docs = clustered_corpus(150, dim=DIM, seed=5)
    index = MultiVectorIndex.create(tmp_path / "idx", dim=DIM, nbits=2)
    index.add([f"d{i}" for i in range(50)], docs[:50], [f"t{i}" for i in range(50)])
    for i in range(50, 150, 5):  # twenty small writes: twenty more segments
        index.add([f"d{j}" for j in range(i, i + 5)], docs[i:i + 5], [f"t{j}" for j in range(i, i + 5)],
                  [{"batch": i} for _ in range(5)])
    index.delete(["d3", "d77", "d120"])
    assert len(index.manifest.segments) == 21
    queries = queries_from(docs, 5)
    before = [[(h.id, round(h.score, 4), h.metadata) for h in index.search(q, k=10, exhaustive=True)] for q in queries]
    while index.merge_segments():
        pass
    assert len(index.manifest.segments) <= MAX_SEGMENTS and len(index) == 147
    after = [[(h.id, round(h.score, 4), h.metadata) for h in index.search(q, k=10, exhaustive=True)] for q in queries]
    assert after == before  # codes copied as they are: the same scores, the same metadata
    assert index.get(["d77"]) == [None] and index.get(["d78"])[0]["text"] == "t78"
    assert check_index(index.path, full=True).problems == []


def test_the_engine_merges_small_writes_in_the_background(tmp_path, pylate_tiny_dir):
    from lfm2_retrieval.engine import SearchEngine, TextDocument
    from lfm2_retrieval.index.writer import MAX_SEGMENTS

    engine = SearchEngine.open(tmp_path / "idx", model=str(pylate_tiny_dir), create=True)
    for i in range(MAX_SEGMENTS + 6):
        engine.upsert([TextDocument(f"doc-{i}", f"note number {i} about rivers and tides")])
        engine.wait_for_merges(30)
    engine.index.refresh()
    assert len(engine.index.manifest.segments) <= MAX_SEGMENTS and len(engine.index) == MAX_SEGMENTS + 6
    assert engine.search(["note number 3"], k=1, mode="lexical")[0][0].metadata["doc_id"] == "doc-3"


@pytest.mark.parametrize("damage", ["truncated", "random bytes", "deleted"])
def test_a_damaged_manifest_is_restored_from_its_commit_point_losing_nothing(damaged, damage):
    """manifest.json truncated, overwritten or gone: check names it, --repair restores the
    current commit from commits/ (written before manifest.json was replaced) and says so."""
    path, docs = damaged
    before = MultiVectorIndex(path)
    commit, chunks = before.commit, sorted(c["id"] for c in before.iter_chunks())
    manifest = path / "manifest.json"
    if damage == "truncated":
        manifest.write_bytes(manifest.read_bytes()[:40])
    elif damage == "random bytes":
        manifest.write_bytes(np.random.default_rng(0).bytes(300))
    else:
        manifest.unlink()
    runner = CliRunner()
    search = runner.invoke(app, ["info", "--index", str(path)])
    assert search.exit_code in (1, 2) and "Traceback" not in search.output
    found = runner.invoke(app, ["check", "--index", str(path)])
    assert found.exit_code == 1 and "manifest.json" in found.output and "commit points kept" in found.output
    repaired = runner.invoke(app, ["check", "--index", str(path), "--repair"])
    assert repaired.exit_code == 1 and "restored from commits/manifest-" in repaired.output, repaired.output
    assert "nothing was lost" in repaired.output
    index = MultiVectorIndex(path)
    assert index.commit == commit and sorted(c["id"] for c in index.iter_chunks()) == chunks
    assert check_index(path, full=True).problems == []
    index.add(["new"], docs[:1], ["new text"])  # and it takes commits again
    assert MultiVectorIndex(path).commit == commit + 1


def test_when_the_newest_commit_point_is_damaged_too_the_last_sound_one_is_restored(damaged):
    """Both manifest.json and the newest commit point damaged: the previous commit point is
    restored if its files are still there (a commit that only deleted: the segments are the
    same), as a new commit number, and the lost commit is named."""
    path, docs = damaged
    index = MultiVectorIndex(path)
    kept = sorted(c["id"] for c in index.iter_chunks())
    index.delete(["d7"])  # a commit whose predecessor's files all stay (the segments are the same)
    lost_commit = index.commit
    (path / "manifest.json").write_text("{")
    (path / "commits" / f"manifest-{lost_commit:06d}.json").write_text("{")
    outcome = repair_index(path, check_index(path))
    assert outcome["lost_commits"] == [lost_commit] and outcome["commit"] == lost_commit + 1
    restored = MultiVectorIndex(path)
    assert sorted(c["id"] for c in restored.iter_chunks()) == kept  # d7 is back: its delete was lost
    assert check_index(path, full=True).problems == []


def test_a_manifest_with_no_commit_point_that_verifies_says_so(damaged):
    path, _ = damaged
    (path / "manifest.json").write_text("{")
    shutil.rmtree(path / "commits")
    report = check_index(path)
    assert "no commit points are kept" in report.problems[0].problem
    with pytest.raises(IndexDamagedError, match="no commit point verifies"):
        repair_index(path, report)


def test_a_missing_segment_file_is_named_as_damage(damaged):
    """rm segments/seg-.../records.bin: named, exit 2 with the command that repairs it, not
    'could not open a consistent snapshot'."""
    path, _ = damaged
    seg = second_segment(path)
    (seg / "records.bin").unlink()
    with pytest.raises(IndexDamagedError, match=f"{seg.name}/records.bin"):
        MultiVectorIndex(path)
    info = CliRunner().invoke(app, ["info", "--index", str(path)])
    assert info.exit_code == 2 and "records.bin" in info.output and "check --repair" in info.output
    report = check_index(path)
    assert report.damaged_segments == [seg.name]


def test_running_out_of_descriptors_while_opening_is_not_damage(damaged):
    """A process starved of descriptors: a resource error (503, exit 1), never 'damaged'."""
    import errno

    from faults import FailingFiles
    from lfm2_retrieval.errors import ResourcesExhaustedError

    path, _ = damaged
    for fail_at in range(1, 40):
        with FailingFiles(path, fail_at=fail_at, error=errno.EMFILE) as faults:
            try:
                MultiVectorIndex(path).search(np.ones((2, DIM), np.float32), k=3)
            except ResourcesExhaustedError as exc:
                assert exc.http_status == 503 and exc.retry_after and "--repair" not in str(exc)
            except OSError as exc:  # raw from a path that maps it at the front ends
                assert exc.errno == errno.EMFILE
        if not faults.failed:
            break
    assert not faults.failed  # every file operation of opening and searching was failed once
    assert check_index(path, full=True).problems == []


def test_an_index_option_naming_a_file_is_a_clear_error(tmp_path):
    regular = tmp_path / "notes.txt"
    regular.write_text("not an index")
    for command in (["info"], ["search", "x"], ["index", str(tmp_path)]):
        result = CliRunner().invoke(app, [*command, "--index", str(regular)])
        assert result.exit_code == 1 and "is a file, not an index folder" in result.output, result.output
        assert "Traceback" not in result.output
