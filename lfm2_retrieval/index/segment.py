"""Immutable segments: the compressed token vectors, inverted file and chunk table of a batch
of chunks, written once and then only read (memory-mapped).

Files of `seg-NNNNNN/`:
    codes.bin        centroid id of every token (uint16 or uint32)
    residuals.bin    packed residuals, [n_tokens, dim * nbits / 8] uint8
    doc_offsets.npy  token range of each chunk, [n_docs + 1] uint32 (uint64 past 4G tokens)
    ivf_index.npy    the inverted file: per centroid, where its entries and its bytes start in
    ivf_lists.npy    the Elias-Fano coded lists of chunks with a token at that centroid
                     (postings.py; about 13 bits an entry at 1M chunks)
    docs.parquet     id (external, string), internal_id (int64), text, metadata (JSON): the
                     chunk table, read by column (ids, filters, optimize)
    records.bin      the same chunks as JSON records, back to back, then the segment's shared
                     metadata (below), with
    record_offsets.npy  their byte ranges: O(1) random access for search hits (a Parquet
                     row-group read costs milliseconds; this costs microseconds)
    bm25/            the BM25 index of the chunks' texts (bm25s, memory-mapped)
    dense.bin        with a dense slot (dense.py): one float16 vector per chunk, [n_docs, dense_dim]
    segment.json     counts and dtypes

Shared metadata (format 3): the metadata a document gives all of its chunks (its fields, title,
source...) is stored once per segment, not once per chunk. A chunk whose metadata is a
ChunkMetadata names the part it shares (`.shared`, one dict object for all of a document's
chunks); the segment stores that part once, after the chunk records in records.bin (`n_shared`
in segment.json), and each chunk's own keys with the number of its shared row (the `shared`
column of docs.parquet, and `"shared"` in its record). Reading puts them together again.

A row is a chunk; the file and field names that say "doc" (doc_offsets, docs.parquet, n_docs)
are the on-disk format's, kept so that every release reads every other's segments.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .analysis import Analysis
from .lexical import BM25Index
from . import dense as dense_module
from .codec import ResidualCodec
from .dense import DENSE_DTYPE, DENSE_FILE, HNSW_FILE, DenseSearcher, build_hnsw
from ..errors import IndexDamagedError, raise_if_resource_error
from .integrity import folder_checksums
from .storage import NPY_LOCK, load_npy, publish_dir, save_npy
from ..lazy import lazy_module

postings = lazy_module("lfm2_retrieval.index.postings")  # numba-compiled: loaded by the first semantic search

ROW_GROUP_ROWS = 4096
LEXICAL_DIR = "bm25"
DOC_SCHEMA = pa.schema([
    ("id", pa.string()),
    ("internal_id", pa.int64()),
    ("text", pa.string()),
    ("metadata", pa.string()),  # the chunk's own keys (all of them where it shares none)
    ("shared", pa.int32()),  # its shared row, -1 for none (absent before format 3)
])
SHARED_CACHE = 4096  # shared rows parsed and kept per segment (a merge reads them in order)


class ChunkMetadata(dict):
    """A chunk's metadata (a plain dict to every reader) that names which of its keys it shares
    with other chunks: `shared`, the same dict object for all of one document's chunks, is
    stored once per segment. Keys of its own override shared ones."""

    __slots__ = ("shared",)

    def __init__(self, shared: Mapping[str, Any], own: Mapping[str, Any]) -> None:
        super().__init__(shared)
        self.update(own)
        self.shared = shared

    def own(self) -> dict[str, Any] | None:
        """The keys to store with the chunk, or None if it no longer agrees with its shared part
        (a key removed or replaced since): then it is stored whole."""
        shared = self.shared
        if any(k not in self for k in shared):
            return None
        return {k: v for k, v in self.items() if k not in shared or v is not shared[k]}


@dataclass
class ChunkBatch:
    """Chunks ready to store: external ids, token vectors and their payload (and, in an index
    with a dense slot, one dense vector per chunk)."""

    ids: list[str]
    vectors: list[np.ndarray]
    texts: list[str]
    metadata: list[dict[str, Any]]
    dense: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = len(self.ids)
        if not (len(self.vectors) == len(self.texts) == len(self.metadata) == n):
            raise ValueError("ids, vectors, texts and metadata must have the same length")
        if self.dense is not None and len(self.dense) != n:
            raise ValueError("dense vectors must be one per chunk")


def title_field(metadata: Mapping[str, Any]) -> str:
    """A chunk's second BM25 field: its document's title and its section's heading path."""
    parts = [metadata.get("title"), metadata.get("section")]
    return " ".join(str(p) for p in parts if p)


class SegmentWriter:
    """Streams batches of chunks into a new segment folder, then publishes it atomically."""

    def __init__(self, index_dir: Path, name: str, codec: ResidualCodec, analysis: Analysis = Analysis.PLAIN) -> None:
        self.final_dir = index_dir / "segments" / name
        self.tmp_dir = index_dir / "segments" / f"{name}.tmp-{os.getpid()}"
        if self.tmp_dir.exists():
            shutil.rmtree(self.tmp_dir)
        self.tmp_dir.mkdir(parents=True)
        self.name = name
        self.codec = codec
        self._codes = open(self.tmp_dir / "codes.bin", "wb")
        self._residuals = open(self.tmp_dir / "residuals.bin", "wb")
        self._docs = pq.ParquetWriter(str(self.tmp_dir / "docs.parquet"), DOC_SCHEMA, compression="zstd")
        self._records = open(self.tmp_dir / "records.bin", "wb")
        self._record_ends: list[int] = []
        self._doclens: list[int] = []
        self.n_docs = 0
        # Shared rows, written aside and appended to records.bin when the segment is finished
        # (inside the temporary folder: a crash's leftovers go with it).
        self._shared_file = open(self.tmp_dir / "shared.tmp", "wb")
        self._shared_ends: list[int] = []
        self._shared_rows: dict[bytes, int] = {}  # digest of a shared row's JSON -> its number
        self._last_shared: tuple[Mapping[str, Any] | None, int] = (None, -1)  # a document's chunks come together
        self._dense = None  # dense.bin, opened by the first batch that has dense vectors
        self.dense_dim: int | None = None
        # What BM25 needs of each chunk beside its text: its language and its title field.
        self.analysis = analysis
        self._languages: list[str] = []
        self._titles: list[str] = []

    def add(self, batch: ChunkBatch, internal_ids: np.ndarray) -> None:
        lengths = [len(v) for v in batch.vectors]
        if any(n == 0 for n in lengths):
            empty = batch.ids[lengths.index(0)]
            raise ValueError(f"chunk {empty!r} has no token vectors")
        flat = np.concatenate(batch.vectors).astype(np.float32, copy=False)
        if flat.shape[1] != self.codec.dim:
            raise ValueError(f"vectors have dimension {flat.shape[1]}, the index expects {self.codec.dim}")
        codes, packed = self.codec.compress(flat)
        self.add_encoded(batch, internal_ids, codes, packed, lengths)

    def add_encoded(self, batch: ChunkBatch, internal_ids: np.ndarray, codes: np.ndarray, packed: np.ndarray,
                    lengths: list[int]) -> None:
        """Chunks already compressed by this codec (a merge copies them: no loss, no work)."""
        self._write_dense(batch)
        self._codes.write(np.ascontiguousarray(codes, dtype=self.codec.code_dtype).tobytes())
        self._residuals.write(np.ascontiguousarray(packed).tobytes())
        self._doclens.extend(lengths)
        self._languages.extend(str(m.get("lang") or "") for m in batch.metadata)
        self._titles.extend(title_field(m) for m in batch.metadata)
        own, rows = self._split_shared(batch.metadata)
        table = pa.table({
            "id": batch.ids,
            "internal_id": pa.array(internal_ids, pa.int64()),
            "text": batch.texts,
            "metadata": [json.dumps(m, ensure_ascii=False, sort_keys=True) for m in own],
            "shared": pa.array(rows, pa.int32()),
        }, schema=DOC_SCHEMA)
        end = self._record_ends[-1] if self._record_ends else 0
        for doc_id, text, meta, row in zip(batch.ids, batch.texts, own, rows):
            record = {"id": doc_id, "text": text, "metadata": meta}
            if row >= 0:
                record["shared"] = row
            data = json.dumps(record, ensure_ascii=False, sort_keys=True).encode("utf-8")
            self._records.write(data)
            end += len(data)
            self._record_ends.append(end)
        self._docs.write_table(table, row_group_size=ROW_GROUP_ROWS)
        self.n_docs += len(batch.ids)

    def _write_dense(self, batch: ChunkBatch) -> None:
        """A segment's chunks all have a dense vector or none has."""
        if batch.dense is None:
            if self._dense is not None:
                raise ValueError("this segment stores a dense vector per chunk: a batch without them cannot join it")
            return
        if self._dense is None:
            if self.n_docs:
                raise ValueError("this segment has chunks without dense vectors: a batch with them cannot join it")
            self._dense = open(self.tmp_dir / DENSE_FILE, "wb")
            self.dense_dim = int(batch.dense.shape[1])
        if batch.dense.ndim != 2 or batch.dense.shape[1] != self.dense_dim:
            raise ValueError(f"dense vectors must be [n, {self.dense_dim}], got {batch.dense.shape}")
        self._dense.write(np.ascontiguousarray(batch.dense, dtype=DENSE_DTYPE).tobytes())

    def _split_shared(self, metadata: Sequence[Mapping[str, Any]]) -> tuple[list[Mapping[str, Any]], list[int]]:
        """(what each chunk stores itself, its shared row or -1)."""
        own_parts, rows = [], []
        for meta in metadata:
            own = meta.own() if isinstance(meta, ChunkMetadata) and meta.shared else None
            if own is None:
                own_parts.append(meta)
                rows.append(-1)
            else:
                own_parts.append(own)
                rows.append(self._shared_row(meta.shared))
        return own_parts, rows

    def _shared_row(self, shared: Mapping[str, Any]) -> int:
        last, row = self._last_shared
        if shared is last:
            return row
        data = json.dumps(shared, ensure_ascii=False, sort_keys=True).encode("utf-8")
        key = hashlib.blake2b(data, digest_size=16).digest()
        row = self._shared_rows.get(key, -1)
        if row < 0:
            row = self._shared_rows[key] = len(self._shared_ends)
            self._shared_file.write(data)
            self._shared_ends.append((self._shared_ends[-1] if self._shared_ends else 0) + len(data))
        self._last_shared = (shared, row)
        return row

    def finish(self) -> dict[str, Any]:
        """Write the inverted file and metadata, fsync, rename into place; return its summary."""
        self._codes.close()
        self._residuals.close()
        self._docs.close()
        self._shared_file.close()
        if self._dense is not None:
            self._dense.close()
        end = self._record_ends[-1] if self._record_ends else 0
        with open(self._shared_file.name, "rb") as shared:
            shutil.copyfileobj(shared, self._records)
        self._records.close()
        os.unlink(self._shared_file.name)
        ends = self._record_ends + [end + e for e in self._shared_ends]
        save_npy(self.tmp_dir / "record_offsets.npy", np.array([0] + ends, dtype=np.uint64))
        total = sum(self._doclens)
        offsets = np.zeros(len(self._doclens) + 1, dtype=np.uint32 if total < 1 << 32 else np.uint64)
        np.cumsum(self._doclens, out=offsets[1:])
        save_npy(self.tmp_dir / "doc_offsets.npy", offsets)
        codes = np.fromfile(self.tmp_dir / "codes.bin", dtype=self.codec.code_dtype)
        ivf_index, ivf_lists = build_ivf(codes, offsets, self.codec.num_centroids)
        save_npy(self.tmp_dir / "ivf_index.npy", ivf_index)
        save_npy(self.tmp_dir / "ivf_lists.npy", ivf_lists)
        info = {
            "name": self.name,
            "n_docs": self.n_docs,
            "n_tokens": int(offsets[-1]),
            "n_shared": len(self._shared_ends),
            "code_dtype": self.codec.code_dtype.name,
            "packed_width": self.codec.dim * self.codec.nbits // 8,
        }
        if self.dense_dim is not None:
            info["dense_dim"] = self.dense_dim
            if self.n_docs >= dense_module.HNSW_MIN_CHUNKS:
                vectors = _memmap(self.tmp_dir / DENSE_FILE, DENSE_DTYPE, (self.n_docs, self.dense_dim))
                build_hnsw(vectors, self.tmp_dir / HNSW_FILE)
                info["dense_graph"] = HNSW_FILE
        # The lexical (BM25) index of the same chunks, built from the stored texts and
        # published with the segment: both change by the same atomic commit.
        texts = pq.read_table(self.tmp_dir / "docs.parquet", columns=["text"]).column(0).to_pylist()
        BM25Index.build(texts, self._languages, self._titles, self.analysis).save(self.tmp_dir / LEXICAL_DIR)
        info["lexical"] = LEXICAL_DIR
        info["analysis"] = self.analysis.to_json()
        # Size and CRC32 of every file, checked at open (sizes) and by `lfm2-search check` (all);
        # the manifest keeps the CRC32 of segment.json itself.
        info["files"] = folder_checksums(self.tmp_dir, exclude=("segment.json",))
        data = json.dumps(info).encode("utf-8")
        (self.tmp_dir / "segment.json").write_bytes(data)
        publish_dir(self.tmp_dir, self.final_dir)
        return {**info, "checksum": zlib.crc32(data)}

    def abort(self) -> None:
        """Drop the unfinished segment. Closing a file may fail (flushing its buffer on a full
        disk): the folder is removed whatever closing met, so a failed write does not keep the
        disk full until the next writer collects it."""
        for f in (self._codes, self._residuals, self._records, self._shared_file, self._docs, self._dense):
            if f is None:
                continue
            try:
                f.close()
            except Exception:
                pass
        shutil.rmtree(self.tmp_dir, ignore_errors=True)


def build_ivf(codes: np.ndarray, doc_offsets: np.ndarray, num_centroids: int) -> tuple[np.ndarray, np.ndarray]:
    """centroid -> distinct chunks with a token there, Elias-Fano coded: (index, lists)."""
    n_docs = max(len(doc_offsets) - 1, 1)
    doc_of_token = np.repeat(np.arange(len(doc_offsets) - 1, dtype=np.int64), np.diff(doc_offsets.astype(np.int64)))
    pairs = np.unique(codes.astype(np.int64) * n_docs + doc_of_token)  # sorted by centroid, then doc
    return postings.encode(pairs // n_docs, pairs % n_docs, num_centroids, n_docs)


# Segments written before the Elias-Fano lists kept uint16 chunk numbers in blocks of
# 65,536 chunks (ivf_offsets.npy / ivf_docs.npy); they are still read as they are.
LEGACY_IVF_BLOCK = 1 << 16


class Segment:
    """Read-only view of a published segment; arrays are memory-mapped, not loaded."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        info = json.loads((folder / "segment.json").read_text(encoding="utf-8"))
        self.info = info
        self.name = info["name"]
        self.n_docs = info["n_docs"]
        self.n_tokens = info["n_tokens"]
        self.n_shared = info.get("n_shared", 0)
        width = info["packed_width"]
        self.codes = _memmap(folder / "codes.bin", np.dtype(info["code_dtype"]), (self.n_tokens,))
        self.residuals = _memmap(folder / "residuals.bin", np.dtype(np.uint8), (self.n_tokens, width))
        self.doc_offsets = load_npy(folder / "doc_offsets.npy", "r")
        self._legacy_ivf = not (folder / "ivf_index.npy").exists()
        if self._legacy_ivf:
            self.ivf_offsets = load_npy(folder / "ivf_offsets.npy", "r")
            self.ivf_docs = load_npy(folder / "ivf_docs.npy", "r")
        else:
            self.ivf_index = load_npy(folder / "ivf_index.npy", "r")
            self.ivf_lists = load_npy(folder / "ivf_lists.npy", "r")
        self.dense_dim: int | None = info.get("dense_dim")
        self.dense = (_memmap(folder / DENSE_FILE, DENSE_DTYPE, (self.n_docs, self.dense_dim))
                      if self.dense_dim else None)
        self.record_offsets = load_npy(folder / "record_offsets.npy", "r")
        self.records = _memmap(folder / "records.bin", np.dtype(np.uint8), (int(self.record_offsets[-1]),))
        # Keep the table's file open: a later commit may unlink it while we still read.
        self._docs_file = pq.ParquetFile(pa.memory_map(str(folder / "docs.parquet")))
        # Not functools.lru_cache on a bound method: that is a reference cycle, and a segment in
        # a cycle keeps its memory maps open until the cycle collector runs (a server then held
        # a thousand descriptors).
        self._shared_cache: dict[int, dict[str, Any]] = {}
        self._metadata_columns: dict[str, list[Any]] = {}  # metadata_values' lists, by key

    @cached_property
    def dense_searcher(self) -> DenseSearcher:
        """The faiss index of this segment's dense vectors (built on first use)."""
        if self.dense is None:
            raise ValueError(f"segment {self.name} has no dense vectors")
        graph = self.folder / HNSW_FILE if self.info.get("dense_graph") else None
        return DenseSearcher(self.dense, graph)

    @cached_property
    def internal_ids(self) -> np.ndarray:
        return self._docs_file.read(columns=["internal_id"]).column(0).to_numpy()

    @cached_property
    def external_ids(self) -> list[str]:
        return self._docs_file.read(columns=["id"]).column(0).to_pylist()

    @cached_property
    def lexical(self) -> BM25Index:
        """The segment's BM25 index (built in memory for segments written before it existed)."""
        if (self.folder / LEXICAL_DIR).is_dir():
            try:
                with NPY_LOCK:  # bm25s opens .npy files too
                    return BM25Index.load(self.folder / LEXICAL_DIR)
            except Exception as exc:
                raise_if_resource_error(exc, self.folder.parent.parent)
                raise IndexDamagedError(self.folder.parent.parent, f"segments/{self.folder.name}/{LEXICAL_DIR}",
                                        f"the BM25 index does not load ({type(exc).__name__})") from None
        return BM25Index.build(self._docs_file.read(columns=["text"]).column(0).to_pylist())

    def _own_and_shared(self) -> tuple[list[dict[str, Any]], list[int], list[dict[str, Any]]]:
        """Each chunk's own metadata, the shared row it points to (-1: none) and the shared rows,
        as Python lists: every `pa.array` call imports pandas (0.6 s), which a scan for
        `lfm2-search info` does not need."""
        names = self._docs_file.schema_arrow.names
        read = self._docs_file.read(columns=["metadata", "shared"] if "shared" in names else ["metadata"])
        own = [json.loads(m) for m in read.column(0).to_pylist()]
        rows = [-1 if r is None else r for r in read.column(1).to_pylist()] if "shared" in names else [-1] * len(own)
        return own, rows, [self._read_shared(j) for j in range(self.n_shared)]

    def metadata_values(self, keys: Sequence[str]) -> dict[str, list[Any]]:
        """{key: its value for each chunk}: the chunk's own, else its shared row's, else None.
        Each key's list is kept (a segment never changes): `info`, the document list and the
        search page's fields scan the same few keys again and again, and parsing every chunk's
        JSON each time cost what the scan itself did."""
        missing = [key for key in keys if key not in self._metadata_columns]
        if missing:
            own, rows, shared = self._own_and_shared()
            for key in missing:
                self._metadata_columns[key] = _merged(key, own, rows, shared)
        return {key: self._metadata_columns[key] for key in keys}

    @cached_property
    def metadata_table(self) -> pa.Table:
        """Metadata as columns (one per key seen in this segment), for filtering. A key found
        only in shared rows is a dictionary column: one value per shared row, so its memory
        and the work of a filter on it follow the documents, not the chunks."""
        own, row_list, shared = self._own_and_shared()
        rows = np.asarray(row_list, dtype=np.int64)
        own_keys = dict.fromkeys(k for row in own for k in row)
        shared_keys = dict.fromkeys(k for row in shared for k in row)
        if not own_keys and not shared_keys:
            return pa.table({"__row": pa.array(range(len(own)), pa.int64())})
        columns = {}
        for key in {**own_keys, **shared_keys}:
            if key in own_keys:  # own values, or the shared row's where the chunk has none
                columns[key] = _metadata_column(_merged(key, own, row_list, shared))
            else:
                dictionary = _metadata_column([row.get(key) for row in shared])
                indices = pa.array(rows, pa.int32(), mask=rows < 0)
                columns[key] = pa.DictionaryArray.from_arrays(indices, dictionary)
        return pa.table(columns)

    def shared_metadata(self, row: int) -> dict[str, Any]:
        """Shared metadata row `row`, cached: a document's chunks then hold the same dict, and a
        merge stores it once again."""
        found = self._shared_cache.get(row)
        if found is None:
            if len(self._shared_cache) >= SHARED_CACHE:
                self._shared_cache.clear()
            found = self._shared_cache[row] = self._read_shared(row)
        return found

    def _read_shared(self, row: int) -> dict[str, Any]:
        return self._record(self.n_docs + row, f"shared metadata {row}")

    def _record(self, i: int, what: str) -> dict[str, Any]:
        start, stop = int(self.record_offsets[i]), int(self.record_offsets[i + 1])
        try:
            return json.loads(self.records[start:stop].tobytes().decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise IndexDamagedError(self.folder.parent.parent, f"segments/{self.folder.name}/records.bin",
                                    f"{what} does not decode ({type(exc).__name__})") from None

    def chunks(self, local: Sequence[int]) -> list[dict[str, Any]]:
        """id, text and metadata of local chunk numbers, in the order given."""
        out = []
        for i in local:
            record = self._record(int(i), f"record {i}")
            row = record.pop("shared", None)
            if row is not None:
                record["metadata"] = ChunkMetadata(self.shared_metadata(row), record["metadata"])
            out.append(record)
        return out

    def token_ranges(self, local: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Token positions of the given chunks, concatenated, and each chunk's count."""
        starts = self.doc_offsets[local].astype(np.int64)
        counts = self.doc_offsets[local + 1].astype(np.int64) - starts
        return concat_ranges(starts, counts), counts

    def ivf_lookup(self, centroids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(chunk, centroid) pairs of the inverted-file lists of `centroids`."""
        if not self._legacy_ivf:
            return postings.decode(self.ivf_index, self.ivf_lists, max(self.n_docs, 1), centroids)
        blocks = max(1, -(-self.n_docs // LEGACY_IVF_BLOCK))
        keys = (centroids[:, None] * blocks + np.arange(blocks)[None, :]).ravel()
        starts = self.ivf_offsets[keys].astype(np.int64)
        sizes = self.ivf_offsets[keys + 1].astype(np.int64) - starts
        positions = concat_ranges(starts, sizes)
        block_base = np.repeat(np.tile(np.arange(blocks, dtype=np.int64) * LEGACY_IVF_BLOCK, len(centroids)), sizes)
        docs = block_base + self.ivf_docs[positions]
        return docs, np.repeat(np.repeat(centroids, blocks), sizes)


def _merged(key: str, own: list[dict[str, Any]], rows: list[int], shared: list[dict[str, Any]]) -> list[Any]:
    """`key`'s value for each chunk: its own, else its shared row's (rows[i] >= 0), else None."""
    return [o[key] if key in o else shared[r].get(key) if r >= 0 else None for o, r in zip(own, rows)]


def _metadata_column(values: list[Any]) -> pa.Array:
    """One metadata key as an Arrow column. Chunks may disagree on a key's type (a year as
    2019 here, "2019" there): ints and floats then share a float column, and anything else
    mixed falls back to JSON text, so one odd chunk never breaks filtering for the rest."""
    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, OverflowError):
        pass
    present = [v for v in values if v is not None]
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in present):
        try:
            return pa.array([None if v is None else float(v) for v in values], pa.float64())
        except OverflowError:
            pass
    return pa.array([None if v is None else v if isinstance(v, str) else json.dumps(v, sort_keys=True)
                     for v in values], pa.string())


def concat_ranges(starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Concatenation of arange(start, start + count) for each pair, without a Python loop."""
    return np.repeat(starts - np.cumsum(counts) + counts, counts) + np.arange(counts.sum())


def _memmap(path: Path, dtype: np.dtype, shape: tuple[int, ...]) -> np.ndarray:
    if shape[0] == 0:
        return np.zeros(shape, dtype=dtype)
    return np.asarray(np.memmap(path, dtype=dtype, mode="r", shape=shape))  # plain ndarray: see load_npy
