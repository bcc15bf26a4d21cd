"""The inverted file's Elias-Fano coded document lists (lfm2_retrieval/index/postings.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from index_helpers import clustered_corpus

from lfm2_retrieval.index import MultiVectorIndex, postings
from lfm2_retrieval.index.manifest import FORMAT_VERSION
from lfm2_retrieval.index.segment import LEGACY_IVF_BLOCK


def _random_lists(rng, universe: int, num_lists: int):
    lists = []
    for k in range(num_lists):
        n = [0, 1, universe, int(rng.integers(0, universe + 1))][k % 4] if universe < 5000 \
            else int(rng.integers(0, 3000))
        lists.append(np.sort(rng.choice(universe, size=min(n, universe), replace=False)))
    return lists


@pytest.mark.parametrize("universe", [1, 2, 3, 8, 9, 255, 256, 1000, 65_537, 3_000_000])
def test_lists_round_trip(universe):
    """Every list decodes to exactly what was coded, in any order of requests, including empty
    lists, single entries, full lists (L = 0) and powers of two."""
    rng = np.random.default_rng(universe)
    lists = _random_lists(rng, universe, 23)
    list_of_entry = np.concatenate([np.full(len(v), k) for k, v in enumerate(lists)]).astype(np.int64)
    index, data = postings.encode(list_of_entry, np.concatenate(lists), len(lists), universe)
    request = rng.permutation(len(lists))
    values, owner = postings.decode(index, data, universe, request)
    assert np.array_equal(values, np.concatenate([lists[k] for k in request]))
    assert np.array_equal(owner, np.concatenate([np.full(len(lists[k]), k) for k in request]))
    none, _ = postings.decode(index, data, universe, np.empty(0, np.int64))
    assert len(none) == 0


def test_list_size_is_elias_fano_bound():
    """A list of n numbers below U takes at most n * (L + 3) bits, L = floor(log2(U/n)), plus
    two bytes of alignment: about 13 bits an entry where uint16 numbers took 16."""
    rng = np.random.default_rng(0)
    universe, n = 1_000_000, 500
    values = np.sort(rng.choice(universe, size=n, replace=False))
    index, data = postings.encode(np.zeros(n, np.int64), values, 1, universe)
    low = postings.low_bits(n, universe)
    assert low == 10  # 2^10 <= 1e6 / 500 = 2000 < 2^11
    assert len(data) * 8 <= n * (low + 3) + 16
    assert len(data) / n < 1.65  # bytes per entry


def test_segment_lists_match_the_codes(tmp_path):
    """The lists of a real segment hold exactly the documents with a token at each centroid."""
    docs = clustered_corpus(700, dim=32, seed=2)
    idx = MultiVectorIndex.create(tmp_path / "ix", dim=32, nbits=2)
    idx.add([str(i) for i in range(len(docs))], docs)
    segment, codec = idx.snapshot.segments[0], idx.snapshot.codec
    doc_of_token = np.repeat(np.arange(segment.n_docs), np.diff(segment.doc_offsets.astype(np.int64)))
    centroids = np.arange(codec.num_centroids)
    got_docs, got_centroids = segment.ivf_lookup(centroids)
    expected = np.unique(np.asarray(segment.codes, np.int64) * segment.n_docs + doc_of_token)
    assert np.array_equal(np.sort(got_centroids * segment.n_docs + got_docs), expected)


def test_segments_of_the_previous_format_still_search(tmp_path):
    """A segment written with the block-uint16 inverted file (before Elias-Fano) still searches,
    with the same answers."""
    docs = clustered_corpus(500, dim=32, seed=4)
    path = tmp_path / "ix"
    idx = MultiVectorIndex.create(path, dim=32, nbits=2)
    idx.add([str(i) for i in range(len(docs))], docs)
    queries = [d[:6] for d in docs[:20]]
    before = [[h.id for h in idx.search(q, k=10)] for q in queries]

    segment, codec = idx.snapshot.segments[0], idx.snapshot.codec
    folder, n_docs = segment.folder, segment.n_docs
    doc_of_token = np.repeat(np.arange(n_docs), np.diff(segment.doc_offsets.astype(np.int64)))
    pairs = np.unique(np.asarray(segment.codes, np.int64) * n_docs + doc_of_token)
    doc, cent = pairs % n_docs, pairs // n_docs
    blocks = -(-n_docs // LEGACY_IVF_BLOCK)
    counts = np.bincount(cent * blocks + doc // LEGACY_IVF_BLOCK, minlength=codec.num_centroids * blocks)
    del idx, segment
    np.save(folder / "ivf_offsets.npy", np.concatenate([[0], np.cumsum(counts)]).astype(np.uint32))
    np.save(folder / "ivf_docs.npy", (doc % LEGACY_IVF_BLOCK).astype(np.uint16))
    (folder / "ivf_index.npy").unlink()
    (folder / "ivf_lists.npy").unlink()

    # ... and without the checksums, which writers of that format did not record.
    info = json.loads((folder / "segment.json").read_text())
    info.pop("files")
    (folder / "segment.json").write_text(json.dumps(info))
    manifest = json.loads((path / "manifest.json").read_text())
    segments = [{k: v for k, v in s.items() if k != "checksum"} for s in manifest["segments"]]
    (path / "manifest.json").write_text(json.dumps({**manifest, "format_version": 1, "segments": segments}))

    reopened = MultiVectorIndex(path)
    assert reopened.manifest.format_version == 1
    assert [[h.id for h in reopened.search(q, k=10)] for q in queries] == before
    # New documents go to a segment of the current format, beside the old one; a commit
    # marks the index with the current format so that an older version refuses it clearly.
    reopened.add(["new"], [docs[0]])
    assert reopened.manifest.format_version == FORMAT_VERSION
    assert {h.id for h in reopened.search(docs[0][:6], k=2)} == {"0", "new"}  # the same vectors
    folders = [s.folder for s in reopened.snapshot.segments]
    assert [(f / "ivf_docs.npy").exists() for f in folders] == [True, False]
    assert [(f / "ivf_lists.npy").exists() for f in folders] == [False, True]


def test_a_newer_format_is_refused_clearly(tmp_path):
    from lfm2_retrieval.index import IndexFolderError

    path = tmp_path / "ix"
    MultiVectorIndex.create(path, dim=8)
    manifest = json.loads((path / "manifest.json").read_text())
    (path / "manifest.json").write_text(json.dumps({**manifest, "format_version": FORMAT_VERSION + 1}))
    with pytest.raises(IndexFolderError, match=f"format {FORMAT_VERSION + 1} is not supported"):
        MultiVectorIndex(path)
