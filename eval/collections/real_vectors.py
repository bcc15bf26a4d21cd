"""Raw token vectors of real chunks, encoded once and kept: the real collection of bench_index.py.

    .venv/bin/python -m eval.collections.real_vectors --chunks 100000     # about 20 minutes once, then cached
    .venv/bin/python -m eval.bench_index --real 100k --sizes "" --no-scifact ...

The records of eval/collections/real_collection.py (every QA paragraph of every language in ../shared/data,
SciFact's abstracts, NTREX-128's documents in 128 languages), in one seeded shuffle so that every
source and script is in any prefix, chunked as `lfm2-search index` chunks them (the engine's
chunker, fitted to the model's document length), up to --chunks chunks. Each chunk is encoded by
the model (the embedded one unless $LFM2_SEARCH_MODEL names another) and its token vectors kept
as raw float32 in parts of PART_CHUNKS chunks, each written whole and renamed into place, so a
run that stops resumes after its last finished part. The folder (eval/out, not committed) is
named by the chunk count and the model's fingerprint: another model encodes anew.

Peers (fast-plaid, LanceDB, pylate) get these vectors as they are; an index built by `lfm2-search
index` holds only their compressed form, hence this cache. Evaluation only: KorQuAD's licence
allows no training, and nothing here trains.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

import numpy as np

from eval.collections.real_collection import ntrex_documents, qa_paragraphs, scifact

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "eval" / "out"
PART_CHUNKS = 5_000
SEED = 17


def real_chunks(encoder, n_chunks: int) -> list:
    """The first n_chunks chunks of the shuffled records, as the engine prepares them
    (PreparedChunk: id, text, metadata with the record's `lang` and `source_set`)."""
    from lfm2_retrieval.engine.chunking import Chunker, ChunkingOptions
    from lfm2_retrieval.engine.documents import TextDocument, iter_chunk_document

    records = qa_paragraphs() + scifact() + ntrex_documents()
    random.Random(SEED).shuffle(records)
    chunker = Chunker(encoder.tokenizer.tokenizer, ChunkingOptions().fitted_to(encoder.config.document_length))
    chunks: list = []
    for record in records:
        doc = TextDocument(record["id"], record["text"], {"lang": record["lang"], "source_set": record["source_set"]},
                           title=record.get("title", ""))
        for chunk in iter_chunk_document(doc, chunker):
            chunks.append(chunk)
            if len(chunks) == n_chunks:
                return chunks
    return chunks


def folder_for(n_chunks: int, fingerprint: str, out: Path = OUT) -> Path:
    return out / f"real-vectors-{n_chunks}-{fingerprint[:12]}"


class RealVectors:
    """A finished cache: parts of raw float32 token vectors, their lengths, the chunks' ids."""

    def __init__(self, folder: Path, limit: int | None = None) -> None:
        """limit: the first `limit` chunks only (the shuffle makes any prefix a fair sample)."""
        self.folder = folder
        self.info = json.loads((folder / "done.json").read_text())
        self.dim = int(self.info["dim"])
        self.parts, self.lengths, left = [], [], self.info["chunks"] if limit is None else limit
        for path in sorted(folder.glob("part-*.lengths.npy")):
            if left <= 0:
                break
            self.parts.append(path)
            self.lengths.append(np.load(path)[:left])
            left -= len(self.lengths[-1])
        self.n_chunks = sum(len(x) for x in self.lengths)
        self.n_tokens = int(sum(x.sum() for x in self.lengths))

    def chunk_ids(self) -> list[str]:
        with open(self.folder / "chunks.jsonl", encoding="utf-8") as f:
            return [json.loads(line)["id"] for line, _ in zip(f, range(self.n_chunks))]

    def pieces(self):
        """(number of the piece's first chunk, list of [n, dim] float32 arrays), a part at a time."""
        first = 0
        for path, lengths in zip(self.parts, self.lengths):
            flat = np.fromfile(path.with_name(path.name.replace(".lengths.npy", ".f32")), np.float32,
                               count=int(lengths.sum()) * self.dim)
            yield first, np.split(flat.reshape(-1, self.dim), np.cumsum(lengths)[:-1])
            first += len(lengths)


def build(n_chunks: int, encoder, out: Path = OUT) -> RealVectors:
    """The cache for n_chunks chunks of `encoder` (a ColBERTEncoder) under `out`, encoding what
    is not there yet."""
    for done in sorted(out.glob(f"real-vectors-*-{encoder.fingerprint[:12]}/done.json")):
        info = json.loads(done.read_text())
        if info.get("requested", info["chunks"]) >= n_chunks:  # a larger cache's prefix is this one
            return RealVectors(done.parent, limit=n_chunks)
    folder = folder_for(n_chunks, encoder.fingerprint, out)
    folder.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    chunks = real_chunks(encoder, n_chunks)
    print(f"{len(chunks)} chunks chunked in {time.perf_counter() - t:.0f} s", file=sys.stderr)
    with open(folder / "chunks.jsonl.tmp", "w", encoding="utf-8") as f:
        for c in chunks:
            f.write(json.dumps({"id": c.id, "lang": c.metadata["lang"], "source_set": c.metadata["source_set"]},
                               ensure_ascii=False) + "\n")
    (folder / "chunks.jsonl.tmp").replace(folder / "chunks.jsonl")
    for number, start in enumerate(range(0, len(chunks), PART_CHUNKS)):
        lengths_path = folder / f"part-{number:05d}.lengths.npy"
        if lengths_path.exists():
            continue  # finished by an earlier run
        t = time.perf_counter()
        vectors = encoder.encode_documents([c.text for c in chunks[start:start + PART_CHUNKS]])
        flat = np.ascontiguousarray(np.concatenate(vectors), np.float32)
        tmp = folder / f"part-{number:05d}.f32.tmp"
        flat.tofile(tmp)
        tmp.replace(folder / f"part-{number:05d}.f32")
        with open(folder / "lengths.tmp.npy", "wb") as f:  # the lengths mark the part finished: last
            np.save(f, np.array([len(v) for v in vectors], np.int32))
        (folder / "lengths.tmp.npy").replace(lengths_path)
        print(f"part {number}: {len(vectors)} chunks, {len(flat)} tokens in {time.perf_counter() - t:.0f} s "
              f"({len(flat) / (time.perf_counter() - t):.0f} tokens/s)", file=sys.stderr)
    (folder / "done.json").write_text(json.dumps({
        "chunks": len(chunks), "requested": n_chunks, "dim": encoder.dim,
        "fingerprint": encoder.fingerprint, "seed": SEED, "part_chunks": PART_CHUNKS}))
    return RealVectors(folder)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--model", help="a PyLate ColBERT folder or hub id (default: the embedded model)")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    parser.add_argument("--out", type=Path, default=OUT, help="where the caches live (default: eval/out)")
    args = parser.parse_args()
    import torch

    from lfm2_retrieval import ColBERTEncoder
    from lfm2_retrieval.model.locations import default_model

    if args.threads:
        torch.set_num_threads(args.threads)
    vectors = build(args.chunks, ColBERTEncoder.from_pretrained(args.model or default_model()), args.out)
    langs: dict[str, int] = {}
    for line in open(vectors.folder / "chunks.jsonl", encoding="utf-8"):
        row = json.loads(line)
        langs[row["source_set"]] = langs.get(row["source_set"], 0) + 1
    print(f"{vectors.folder}: {vectors.n_chunks} chunks, {vectors.n_tokens} tokens "
          f"({vectors.n_tokens / vectors.n_chunks:.0f} a chunk), {vectors.dim}-d; by source: {langs}")


if __name__ == "__main__":
    main()
