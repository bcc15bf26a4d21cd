"""A document's metadata is stored once per segment, not once per chunk (segment.py, format 3)."""

import subprocess
import sys

import numpy as np
import pyarrow as pa
import pytest

from lfm2_retrieval.engine import SearchEngine, TextDocument
from lfm2_retrieval.index import ChunkMetadata, MultiVectorIndex

from index_helpers import clustered_corpus

DIM = 32
BIG = "x" * 20_000  # a 20 KB metadata value (the API allows 2 KB a value; Python callers more)


def _document_chunks(n_docs: int, chunks_per_doc: int, prefix: str = ""):
    """(ids, metadata) of chunks as the engine makes them: one shared dict per document."""
    ids, metadata = [], []
    for d in range(n_docs):
        shared = {"doc_id": f"{prefix}doc-{d}", "source": f"/docs/{d % 3}.md", "year": 2000 + d, "notes": BIG,
                  "tags": ["a", "b"]}
        for c in range(chunks_per_doc):
            ids.append(f"{prefix}doc-{d}#{c}")
            metadata.append(ChunkMetadata(shared, {"chunk": c, "lang": "en" if c % 2 else "fr"}))
    return ids, metadata


@pytest.fixture()
def index(tmp_path):
    ids, metadata = _document_chunks(n_docs=6, chunks_per_doc=25)
    idx = MultiVectorIndex.create(tmp_path / "idx", dim=DIM)
    idx.add(ids, clustered_corpus(len(ids), dim=DIM), [f"text of {i}" for i in ids], metadata)
    return idx


def _records_bytes(index: MultiVectorIndex) -> int:
    return sum((index.path / "segments" / s.name / "records.bin").stat().st_size for s in index.manifest.segments)


def test_a_documents_metadata_is_stored_once_and_read_back_whole(index):
    # 150 chunks of 6 documents with 20 KB of metadata each: 6 copies of it, not 150.
    assert 6 * len(BIG) < _records_bytes(index) < 7 * len(BIG)
    (chunk,) = index.get(["doc-4#7"])
    assert chunk["metadata"] == {"doc_id": "doc-4", "source": "/docs/1.md", "year": 2004, "notes": BIG,
                                 "tags": ["a", "b"], "chunk": 7, "lang": "en"}
    hit = index.search(clustered_corpus(150, dim=DIM)[40], k=1)[0]
    assert hit.id == "doc-1#15" and hit.metadata["notes"] == BIG and hit.metadata["chunk"] == 15


def test_filters_on_shared_keys(index):
    table = index.snapshot.segments[0].metadata_table
    assert pa.types.is_dictionary(table.column("source").type)  # a value per document, not per chunk
    assert len(table.column("source").chunk(0).dictionary) == 6
    assert sorted(index.ids_where({"year": {"$gte": 2004}})) == sorted(
        f"doc-{d}#{c}" for d in (4, 5) for c in range(25)
    )
    assert len(index.ids_where({"source": "/docs/1.md"})) == 50
    assert len(index.ids_where({"source": {"$in": ["/docs/0.md", "/docs/2.md"]}})) == 100
    assert len(index.ids_where({"source": {"$ne": "/docs/0.md"}, "lang": "en"})) == 48
    assert len(index.ids_where({"source": {"$glob": "/docs/[01].md"}})) == 100
    assert len(index.ids_where({"source": {"$prefix": "/docs/2"}})) == 50
    assert index.ids_where({"year": "2004"}) == []  # a string against integers matches nothing
    assert len(index.ids_where({"$or": [{"doc_id": "doc-0"}, {"chunk": 0}]})) == 25 + 5
    # Chunks stored without shared metadata sit beside them: they match negative conditions only.
    index.add(["plain"], [np.ones((3, DIM), np.float32) / np.sqrt(DIM)], ["plain"], [{"lang": "en"}])
    assert "plain" in index.ids_where({"source": {"$nin": ["/docs/0.md"]}})
    assert "plain" not in index.ids_where({"source": {"$prefix": "/"}})


def test_a_scan_reads_what_the_filter_table_holds_without_building_arrow_arrays(index):
    index.add(["plain"], [np.ones((3, DIM), np.float32) / np.sqrt(DIM)], ["plain"], [{"lang": "en"}])
    keys = ["doc_id", "source", "chunk", "lang", "missing"]
    scanned = dict(index.scan_metadata(keys))
    for seg in index.snapshot.segments:
        table = seg.metadata_table
        for i, chunk_id in enumerate(seg.external_ids):
            assert scanned[chunk_id] == {k: table.column(k)[i].as_py() if k in table.column_names else None
                                         for k in keys}
    assert scanned["doc-2#3"] == {"doc_id": "doc-2", "source": "/docs/2.md", "chunk": 3, "lang": "en",
                                  "missing": None}
    assert scanned["plain"] == {"doc_id": None, "source": None, "chunk": None, "lang": "en", "missing": None}
    # `lfm2-search info` scans every chunk: every pa.array call imports pandas (0.6 s), a scan makes none.
    code = ("import sys; from lfm2_retrieval.index import MultiVectorIndex; "
            f"n = sum(1 for _ in MultiVectorIndex({str(index.path)!r}).scan_metadata(['source'])); "
            "print(n, 'pandas' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["151", "False"]


def test_a_segment_parses_its_metadata_once_per_key(index, monkeypatch):
    from lfm2_retrieval.index.segment import Segment
    reads = []
    original = Segment._own_and_shared
    monkeypatch.setattr(Segment, "_own_and_shared", lambda self: reads.append(self.name) or original(self))
    first = dict(index.scan_metadata(["source"]))
    assert dict(index.scan_metadata(["source"])) == first and len(reads) == len(index.snapshot.segments)
    both = dict(index.scan_metadata(["source", "chunk"]))  # a new key: one more read per segment
    assert len(reads) == 2 * len(index.snapshot.segments)
    assert {k: v["source"] for k, v in both.items()} == {k: v["source"] for k, v in first.items()}
    assert dict(index.scan_metadata(["chunk", "source"])) == both and len(reads) == 2 * len(index.snapshot.segments)


def test_merges_and_optimize_keep_one_copy(index):
    ids, metadata = _document_chunks(n_docs=2, chunks_per_doc=25, prefix="more-")
    index.add(ids, clustered_corpus(50, dim=DIM, seed=3), ["t"] * 50, metadata)
    index.delete(["doc-0#3"])
    index.merge_segments(max_segments=1)
    assert len(index.manifest.segments) == 1
    assert 8 * len(BIG) < _records_bytes(index) < 9 * len(BIG)
    index.optimize()
    assert 8 * len(BIG) < _records_bytes(index) < 9 * len(BIG)
    (chunk,) = index.get(["more-doc-1#24"])
    assert chunk["metadata"]["notes"] == BIG and chunk["metadata"]["chunk"] == 24
    assert len(index.ids_where({"source": "/docs/0.md"})) == 49 + 25


def test_metadata_changed_after_it_was_made_is_stored_as_it_is(tmp_path):
    """A ChunkMetadata whose shared keys were removed or replaced is stored whole."""
    shared = {"doc_id": "d", "source": "a"}
    changed = ChunkMetadata(shared, {"chunk": 1})
    del changed["source"]
    replaced = ChunkMetadata(shared, {"chunk": 2})
    replaced["source"] = "b"
    idx = MultiVectorIndex.create(tmp_path / "idx", dim=DIM)
    idx.add(["d#0", "d#1", "d#2"], clustered_corpus(3, dim=DIM), ["", "", ""],
            [ChunkMetadata(shared, {"chunk": 0}), changed, replaced])
    assert [c["metadata"] for c in idx.get(["d#0", "d#1", "d#2"])] == [
        {"doc_id": "d", "source": "a", "chunk": 0},
        {"doc_id": "d", "chunk": 1},
        {"doc_id": "d", "source": "b", "chunk": 2},
    ]
    assert idx.ids_where({"source": "a"}) == ["d#0"]


def test_engine_documents_share_their_metadata(tmp_path, pylate_tiny_dir):
    engine = SearchEngine.open(tmp_path / "idx", model=str(pylate_tiny_dir), create=True)
    text = " ".join(f"Paragraph {i} tells of tides, harbours and the keepers of lighthouses." for i in range(120))
    engine.upsert([TextDocument("guide", text, {"team": "ops", "notes": BIG}, title="Harbour guide")])
    chunks = list(engine.index.iter_chunks())
    assert len(chunks) > 10
    assert _records_bytes(engine.index) < len(text.encode()) * 2 + 2 * len(BIG)
    assert all(c["metadata"]["notes"] == BIG and c["metadata"]["title"] == "Harbour guide" for c in chunks)
    assert sorted(c["metadata"]["chunk"] for c in chunks) == list(range(len(chunks)))
    assert engine.search(["tides"], k=3, filter={"team": "ops"})[0]


def test_a_replaced_snapshot_closes_its_files_without_the_cycle_collector(index):
    """Segments must not sit in reference cycles: a server drops a snapshot at every commit, and
    a segment in a cycle keeps its memory maps and file handles until the collector runs (the
    soak run's server once held 1,268 descriptors so)."""
    import gc
    import weakref

    hit = index.search(clustered_corpus(150, dim=DIM)[40], k=3)  # reads shared rows through the cache
    assert hit[0].metadata["notes"] == BIG
    old = weakref.ref(index.snapshot.segments[0])
    gc.collect()
    gc.disable()
    try:
        index.add(["plain"], [np.ones((3, DIM), np.float32) / np.sqrt(DIM)], ["plain"], [{"lang": "en"}])
        index.merge_segments(max_segments=1)
        assert old() is None
    finally:
        gc.enable()
