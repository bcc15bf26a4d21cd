"""`lfm2-search index`: every file type, incremental runs, interruptions and crashes."""

import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import pytest

from file_fixtures import write_corpus
from lfm2_retrieval.engine.chunking import ChunkingOptions
from lfm2_retrieval.engine import SearchEngine
from lfm2_retrieval.index import MultiVectorIndex
from lfm2_retrieval.ingest import IngestOptions, Ingestor, source_name
from lfm2_retrieval.ingest.pipeline import INCOMPLETE

READABLE = ["md", "txt", "rst", "html", "json", "jsonl", "csv", "tsv", "parquet", "pdf", "broken"]


def engine_for(path: Path, model: Path, **kwargs) -> SearchEngine:
    return SearchEngine.open(path, model=str(model), create=True, **kwargs)


def chunks_by_source(index: MultiVectorIndex) -> dict[str, dict[str, str]]:
    """source -> {chunk id: text} of live chunks."""
    out: dict[str, dict[str, str]] = defaultdict(dict)
    for doc in index.iter_chunks():
        out[doc["metadata"].get("source")][doc["id"]] = doc["text"]
    return dict(out)


def test_indexes_every_file_type(tmp_path, pylate_tiny_dir):
    files = write_corpus(tmp_path / "docs")
    engine = engine_for(tmp_path / "idx", pylate_tiny_dir)
    report = Ingestor(engine).run([tmp_path / "docs"])
    assert report.files_indexed == len(READABLE) and report.files_found == len(READABLE) + 1
    assert [Path(p).name for p, _ in report.skipped] == ["blob.txt"]
    assert report.unsupported == {".png": 1}
    assert any("malformed" in w for _, w in report.warnings)
    held = chunks_by_source(engine.index)
    assert set(held) == {source_name(files[k]) for k in READABLE}
    pdf = [d for d in engine.index.iter_chunks() if d["metadata"]["source"] == source_name(files["pdf"])]
    assert {d["metadata"]["page"] for d in pdf} <= {1, 2} and pdf[0]["metadata"]["page"] == 1
    (csv_fr,) = engine.index.get([f"{source_name(files['csv'])}#c2#0"])
    assert csv_fr["text"] == "Les rivières coulent." and csv_fr["metadata"]["lang"] == "fr"
    assert csv_fr["metadata"]["record_id"] == "c2" and csv_fr["metadata"]["doc_id"].endswith("#c2")
    # Filters see record metadata and sources.
    hits = engine.search(["rivers"], k=5, filter={"lang": "fr"})[0]
    # The record's own lang, and a French file's detected one (Latin-1 bytes, read right).
    assert {h.id for h in hits} == {csv_fr["id"], f"{source_name(files['broken'])}#0"}
    (guide,) = engine.index.get([f"{source_name(files['md'])}#0"])
    assert guide["metadata"]["lang"] == "en" and guide["metadata"]["section"] == "Compression guide"
    hits = engine.search(["anything"], k=50, filter={"source": source_name(files["md"])})[0]
    assert hits and all(h.metadata["source"] == source_name(files["md"]) for h in hits)


def test_reindexing_is_incremental(tmp_path, pylate_tiny_dir):
    files = write_corpus(tmp_path / "docs")
    engine = engine_for(tmp_path / "idx", pylate_tiny_dir)
    Ingestor(engine).run([tmp_path / "docs"])
    before, commit = chunks_by_source(engine.index), engine.index.commit

    again = Ingestor(engine).run([tmp_path / "docs"])
    assert again.files_indexed == 0 and again.files_unchanged == len(READABLE)
    assert engine.index.commit == commit  # nothing changed, nothing committed

    files["txt"].write_text("Completely new words about lighthouses and keepers.\n")
    files["json"].unlink()
    third = Ingestor(engine).run([tmp_path / "docs"])
    assert (third.files_indexed, third.files_removed, third.files_unchanged) == (1, 1, len(READABLE) - 2)
    after = chunks_by_source(engine.index)
    assert source_name(files["json"]) not in after
    assert "lighthouses and keepers" in " ".join(after[source_name(files["txt"])].values())
    for key in ("md", "pdf", "csv"):  # untouched files keep their chunk ids
        assert after[source_name(files[key])] == before[source_name(files[key])]
    assert len(engine.index) == sum(len(v) for v in after.values())


def test_other_roots_and_api_documents_are_left_alone(tmp_path, pylate_tiny_dir):
    from lfm2_retrieval.engine import TextDocument

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "one.txt").write_text("alpha text")
    (tmp_path / "b" / "two.txt").write_text("beta text")
    engine = engine_for(tmp_path / "idx", pylate_tiny_dir)
    Ingestor(engine).run([tmp_path / "a"])
    Ingestor(engine).run([tmp_path / "b"])
    engine.upsert([TextDocument("api-doc", "added through the API")])
    Ingestor(engine).run([tmp_path / "a"])  # must not remove b's files or the API document
    assert {d["metadata"]["doc_id"] for d in engine.index.iter_chunks()} == {
        source_name(tmp_path / "a" / "one.txt"), source_name(tmp_path / "b" / "two.txt"), "api-doc"}


def test_include_exclude_and_setting_changes(tmp_path, pylate_tiny_dir):
    write_corpus(tmp_path / "docs")
    engine = engine_for(tmp_path / "idx", pylate_tiny_dir)
    report = Ingestor(engine, IngestOptions(include=["*.md", "*.jsonl"], exclude=["sub/*"])).run([tmp_path / "docs"])
    assert report.files_indexed == 1  # guide.md; sub/records.jsonl is excluded
    # Other chunk settings re-index everything: chunks depend on them.
    engine2 = SearchEngine.open(tmp_path / "idx", chunking=ChunkingOptions(16, 2))
    report = Ingestor(engine2, IngestOptions(include=["*.md"])).run([tmp_path / "docs"])
    assert report.files_indexed == 1 and report.files_unchanged == 0


def test_ctrl_c_keeps_the_last_commit_and_the_next_run_finishes(tmp_path, pylate_tiny_dir):
    write_corpus(tmp_path / "docs")
    engine = engine_for(tmp_path / "idx", pylate_tiny_dir)
    options = IngestOptions(commit_every_seconds=0, encode_batch_chunks=1)
    calls = []

    def interrupt_on_third(event, info):
        if event == "files" and info["files"]:  # progress also comes inside a file: count whole files
            calls.append(event)
        if len(calls) == 3:  # two files committed, then Ctrl-C
            raise KeyboardInterrupt

    report = Ingestor(engine, options, interrupt_on_third).run([tmp_path / "docs"])
    assert report.interrupted
    engine.index.refresh()
    partial = chunks_by_source(engine.index)
    assert 0 < len(partial) < len(READABLE)
    # A record file may be committed in part (between its records): the index says which.
    complete = set(partial) - set(engine.user_data.get(INCOMPLETE, {}))
    final = Ingestor(engine, options).run([tmp_path / "docs"])
    assert not final.interrupted and final.files_indexed == len(READABLE) - len(complete)
    assert len(chunks_by_source(engine.index)) == len(READABLE)
    clean = engine_for(tmp_path / "clean", pylate_tiny_dir)
    Ingestor(clean).run([tmp_path / "docs"])
    assert chunks_by_source(engine.index) == chunks_by_source(clean.index)
    assert INCOMPLETE not in engine.user_data


CRASHING_RUN = """
import sys
from lfm2_retrieval.engine import SearchEngine
from lfm2_retrieval.ingest import IngestOptions, Ingestor
engine = SearchEngine.open(sys.argv[1], model=sys.argv[2], create=True)
Ingestor(engine, IngestOptions(commit_every_seconds=0, encode_batch_chunks=1)).run([sys.argv[3]])
"""


@pytest.mark.slow
def test_kill_9_in_the_middle_then_the_next_run_finishes(tmp_path, pylate_tiny_dir):
    docs = tmp_path / "docs"
    docs.mkdir()
    for i in range(80):
        (docs / f"file{i:03d}.txt").write_text(f"Document {i} says " + "something rather long. " * (20 + i % 7))
    idx = tmp_path / "idx"
    proc = subprocess.Popen([sys.executable, "-c", CRASHING_RUN, str(idx), str(pylate_tiny_dir), str(docs)],
                            env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])})
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if (idx / "manifest.json").exists() and MultiVectorIndex(idx).commit >= 3:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the indexing run ended before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()

    engine = SearchEngine.open(idx, model=str(pylate_tiny_dir))
    partial = chunks_by_source(engine.index)
    assert 0 < len(partial) < 80
    report = Ingestor(engine).run([docs])
    assert report.files_indexed == 80 - len(partial) and report.files_unchanged == len(partial)

    clean = engine_for(tmp_path / "clean", pylate_tiny_dir)
    Ingestor(clean).run([docs])
    assert chunks_by_source(engine.index) == chunks_by_source(clean.index)  # same chunks, ids and texts


def test_fifos_devices_and_links_out_of_the_folder_are_skipped_with_a_reason(tmp_path, pylate_tiny_dir):
    """A FIFO once blocked indexing forever, a link to /dev/zero grew memory without bound, and a
    link out of the folder indexed files the user did not point at."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "real.md").write_text("# Real\nA real page about tides.")
    os.mkfifo(docs / "pipe.md")
    os.symlink("/dev/zero", docs / "zero.txt")
    outside = tmp_path / "secret.md"
    outside.write_text("# Secret\nNot under docs.")
    os.symlink(outside, docs / "secret-link.md")
    os.symlink(docs / "real.md", docs / "inside-link.md")  # a link within the folder is read
    engine = engine_for(tmp_path / "idx", pylate_tiny_dir)
    report = Ingestor(engine).run([docs])
    skipped = {Path(p).name: why for p, why in report.skipped}
    assert set(skipped) == {"pipe.md", "zero.txt", "secret-link.md"}
    assert "not a regular file" in skipped["pipe.md"] and "not a regular file" in skipped["zero.txt"]
    assert "outside" in skipped["secret-link.md"]
    assert set(chunks_by_source(engine.index)) == {source_name(docs / "real.md"), source_name(docs / "inside-link.md")}


def test_one_bad_file_or_line_costs_only_itself(tmp_path, pylate_tiny_dir):
    """Each of these once aborted the whole run with a traceback."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "good.md").write_text("# Good\nTides follow the moon.")
    (docs / "numbers.jsonl").write_text(
        '{"id": "a", "text": "x", "n": ' + "9" * 5000 + '}\n{"id": "b", "text": "fine"}\n'
    )
    (docs / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    with open(os.path.join(os.fsencode(docs), b"bad\xffname.md"), "wb") as f:
        f.write(b"# Bad name\nText.")
    folder = docs
    for _ in range(1100):  # deeper than Python 3.11's recursive os.walk can go
        folder = folder / "d"
        folder.mkdir()
    (folder / "deep.md").write_text("# Deep\nDeep text.")
    engine = engine_for(tmp_path / "idx", pylate_tiny_dir)
    try:
        report = Ingestor(engine).run([docs])
    finally:  # shutil.rmtree (pytest's clean-up) recurses too, and would fail on this tree
        while folder != docs:
            for child in folder.iterdir():
                child.unlink()
            folder.rmdir()
            folder = folder.parent
    skipped = {Path(p).name: why for p, why in report.skipped}
    assert "invalid JSON" in skipped["deep.json"] and "not valid UTF-8" in skipped["bad\udcffname.md"]
    assert any("malformed line" in w for _, w in report.warnings)
    held = chunks_by_source(engine.index)
    assert {Path(s).name for s in held} == {"good.md", "numbers.jsonl", "deep.md"}
    assert [t for t in held[source_name(docs / "numbers.jsonl")].values()] == ["fine"]


def test_markdown_chunks_follow_sections_and_carry_their_path(tmp_path, pylate_tiny_dir):
    docs = tmp_path / "docs"
    docs.mkdir()
    long_section = " ".join(f"Sentence {i} about installing on Debian." for i in range(40))
    (docs / "install.md").write_text(
        f"# Install {{ #install }}\n\nA short introduction to the installation.\n\n## On Debian\n\n{long_section}\n\n"
        "## Win\n\nOk.\n"
    )
    engine = engine_for(tmp_path / "idx", pylate_tiny_dir, chunking=ChunkingOptions(48, 4, min_tokens=20))
    Ingestor(engine).run([docs])
    chunks = sorted((d for d in engine.index.iter_chunks()), key=lambda d: d["metadata"]["chunk"])
    sections = [d["metadata"]["section"] for d in chunks]
    assert sections[0] == "Install" and "Install > On Debian" in sections
    assert all("{ #" not in d["text"] for d in chunks)
    debian = [d for d in chunks if d["metadata"]["section"] == "Install > On Debian"]
    assert debian[0]["text"].startswith("On Debian")  # a section starts a chunk
    # The short last section is no chunk of its own: it closes the one before.
    assert chunks[-1]["text"].endswith("Win\n\nOk.") and chunks[-1]["metadata"]["section"] == "Install > On Debian"


def test_a_run_that_lost_the_race_plans_again_under_the_lock(tmp_path, pylate_tiny_dir):
    """Two `index` runs over the same folder: the second read the index before the first
    committed, then took the lock; it once added the same chunks again ("ids already exist")."""
    write_corpus(tmp_path / "docs")
    first = engine_for(tmp_path / "idx", pylate_tiny_dir)
    second = SearchEngine.open(tmp_path / "idx", model=str(pylate_tiny_dir))
    real_writer = second.index.writer

    def writer_after_the_other_run(*args, **kwargs):
        Ingestor(first).run([tmp_path / "docs"])  # commits between the second run's read and its lock
        return real_writer(*args, **kwargs)

    second.index.writer = writer_after_the_other_run
    report = Ingestor(second).run([tmp_path / "docs"])
    assert report.files_indexed == 0 and report.files_unchanged == len(READABLE)
    second.index.refresh()
    ids = [d["id"] for d in second.index.iter_chunks()]
    assert len(ids) == len(set(ids)) and {s for s in chunks_by_source(second.index)} == \
        {s for s in chunks_by_source(first.index)}


def test_memory_per_file_does_not_grow_with_its_size(tmp_path, pylate_tiny_dir, monkeypatch):
    """Once a 200 MB one-line file took 8 GB: the whole text was tokenised at once (a Python
    tuple of offsets per token) and a file's chunks encoded in one call. Chunks now stream
    through batches: indexing a file 4 times larger takes about as much memory at its peak.
    Encoding is replaced by random vectors here, the same shape the model gives, so the test
    measures the pipeline's own memory in seconds. A segment's inverted file and BM25 index are
    built in memory when it is finished, so a commit rolls over to a new segment every
    MAX_SEGMENT_CHUNKS chunks (100,000; 400 here, so that a small file is a large one)."""
    import random
    import tracemalloc

    import numpy as np

    import lfm2_retrieval.index.writer as writer_module

    monkeypatch.setattr(writer_module, "MAX_SEGMENT_CHUNKS", 400)

    engine = engine_for(tmp_path / "idx", pylate_tiny_dir)
    rng = np.random.default_rng(0)

    def fake_encode(chunks):
        out = []
        for c in chunks:
            v = rng.standard_normal((c.n_tokens, engine.encoder.dim)).astype(np.float32)
            out.append(v / np.linalg.norm(v, axis=1, keepdims=True))
        return out

    monkeypatch.setattr(engine, "encode_chunks", fake_encode)
    (tmp_path / "warm").mkdir()
    (tmp_path / "warm" / "w.txt").write_text("a first small file so that the codec exists. " * 2000)
    Ingestor(engine).run([tmp_path / "warm"])  # the codec is trained on it: later runs stream straight to disk
    words = "tide moon sea volcano magma crust river delta glacier harbour lighthouse keeper".split()
    pick = random.Random(0)
    peaks = {}
    for megabytes in (0.25, 1):
        folder = tmp_path / f"big-{megabytes}"
        folder.mkdir()
        text = " ".join(pick.choice(words) + str(pick.randrange(1000)) for _ in range(int(megabytes * 110_000)))
        (folder / "one-line.txt").write_text(text)  # one line, no section: the worst case
        del text
        tracemalloc.start()
        report = Ingestor(engine).run([folder])
        peaks[megabytes] = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
        assert report.files_indexed == 1 and report.chunks_added > 100
    print(f"peak traced memory: {peaks[0.25]:.1f} MB for 0.25 MB of text, {peaks[1]:.1f} MB for 1 MB")
    # The text itself (read as bytes, decoded, held by the document) grows with the file; the
    # rest may not: before, each MB of text added about 100 MB of token offsets and vectors.
    assert peaks[1] - peaks[0.25] < 4 * 0.75


def _records(path: Path, n: int, word: str = "record", repeat: int = 1) -> None:
    import json
    with open(path, "w", encoding="utf-8") as f:
        for i in range(n):
            f.write(
                json.dumps(
                    {
                        "id": f"r{i}",
                        "text": f"The {word} number {i} tells of " + "tides and harbours, " * repeat,
                        "year": 2000 + i % 20,
                    }
                )
                + "\n"
            )


def _stop_after(engine: SearchEngine, monkeypatch, calls: int) -> list[int]:
    """Encoding counts its chunks and raises KeyboardInterrupt at call number `calls`."""
    encoded: list[int] = []
    real = SearchEngine.encode_chunks.__get__(engine)  # the engine's own, not an earlier wrapper

    def encode(chunks):
        if len(encoded) + 1 == calls:
            raise KeyboardInterrupt
        encoded.append(len(chunks))
        return real(chunks)

    monkeypatch.setattr(engine, "encode_chunks", encode)
    return encoded


def _interrupted_record_run(tmp_path: Path, model: Path, monkeypatch, records: int, calls: int):
    """A folder with one JSON Lines file of `records` records, indexed with a commit due between
    any two records (each record is then encoded and committed alone), and Ctrl-C at encoding
    call `calls`. Returns (folder, engine, options)."""
    docs = tmp_path / "docs"
    docs.mkdir()
    _records(docs / "log.jsonl", records)
    engine = engine_for(tmp_path / "idx", model)
    options = IngestOptions(commit_every_seconds=0, encode_batch_chunks=4)
    _stop_after(engine, monkeypatch, calls=calls)
    assert Ingestor(engine, options).run([docs]).interrupted
    return docs, engine, options


def test_a_long_record_file_is_committed_in_pieces_and_the_next_run_resumes_it(tmp_path, pylate_tiny_dir, monkeypatch):
    docs, engine, options = _interrupted_record_run(tmp_path, pylate_tiny_dir, monkeypatch, records=40, calls=5)
    engine.refresh()
    source = source_name(docs / "log.jsonl")
    stored = len(chunks_by_source(engine.index)[source])
    assert stored == 4
    assert engine.user_data[INCOMPLETE] == {
        source: engine.chunk_metadata(["content_hash"]).__next__()[1]["content_hash"]
    }

    encoded = _stop_after(engine, monkeypatch, calls=0)
    report = Ingestor(engine, options).run([docs])
    assert not report.interrupted and report.files_indexed == 1 and report.chunks_removed == 0
    assert sum(encoded) == 40 - stored  # the stored records are not read into the model again
    assert INCOMPLETE not in engine.user_data
    clean = engine_for(tmp_path / "clean", pylate_tiny_dir)
    Ingestor(clean).run([docs])
    assert chunks_by_source(engine.index) == chunks_by_source(clean.index)
    assert Ingestor(engine, options).run([docs]).files_unchanged == 1  # complete now: nothing to do


def test_an_incomplete_record_file_that_changed_is_read_again_from_the_start(tmp_path, pylate_tiny_dir, monkeypatch):
    docs, engine, options = _interrupted_record_run(tmp_path, pylate_tiny_dir, monkeypatch, records=30, calls=3)
    _records(docs / "log.jsonl", 20, word="entry")  # rewritten: fewer records, other text
    _stop_after(engine, monkeypatch, calls=0)
    report = Ingestor(engine, options).run([docs])
    assert report.chunks_removed == 2 and report.chunks_added == 20
    clean = engine_for(tmp_path / "clean", pylate_tiny_dir)
    Ingestor(clean).run([docs])
    assert chunks_by_source(engine.index) == chunks_by_source(clean.index)
    assert INCOMPLETE not in engine.user_data


def test_a_record_file_is_read_as_a_stream(tmp_path, pylate_tiny_dir, monkeypatch):
    """Peak memory while indexing a JSON Lines file grows with its records by the writer's
    bookkeeping of each chunk (its id, token count and offsets: about 500 bytes), not by their
    text: the file was read whole, decoded, and every record held as a SourceText before the
    first was encoded (measured: 1,160 bytes a record of 180 characters, against 527 now).
    Encoding is replaced by random vectors, as in the test above."""
    import tracemalloc

    import numpy as np

    import lfm2_retrieval.index.writer as writer_module

    monkeypatch.setattr(writer_module, "MAX_SEGMENT_CHUNKS", 2000)
    engine = engine_for(tmp_path / "idx", pylate_tiny_dir)
    rng = np.random.default_rng(0)

    def fake_encode(chunks):
        return [rng.standard_normal((c.n_tokens, engine.encoder.dim)).astype(np.float32) for c in chunks]

    monkeypatch.setattr(engine, "encode_chunks", fake_encode)
    _records(tmp_path / "warm.jsonl", 300)
    Ingestor(engine).run([tmp_path / "warm.jsonl"])  # the codec exists: later runs stream to disk
    peaks = {}
    for n in (2_000, 8_000):
        folder = tmp_path / f"records-{n}"
        folder.mkdir()
        _records(folder / "many.jsonl", n, repeat=7)  # about 180 characters a record: one chunk here
        tracemalloc.start()
        report = Ingestor(engine).run([folder])
        peaks[n] = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
        assert report.chunks_added == n
    per_record = (peaks[8_000] - peaks[2_000]) * 2**20 / 6_000
    print(f"peak traced memory: {peaks[2_000]:.1f} MB for 2,000 records, {peaks[8_000]:.1f} MB for 8,000 "
          f"({per_record:.0f} bytes a record)")
    assert per_record < 800
