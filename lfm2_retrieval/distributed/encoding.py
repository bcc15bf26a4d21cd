"""Encoding on a Ray cluster: `lfm2-search index PATH... --ray [--ray-address ADDRESS]`.

    encoding = RayEncoding(engine, address=None, workers=2)   # None: a local Ray instance
    Ingestor(engine, encoding=encoding).run(["docs/"])

Only encoding moves: the ingestion pipeline still reads, chunks and commits on this machine
(the one holding the documents and the index), so incremental runs, commits between files and
crash safety are those of a local run. Each window of staged chunks (`batch_chunks`) becomes a
Ray Data dataset of groups of chunks, mapped by `map_batches` over a pool of stateful
ChunkEncoder actors (the model is loaded once per actor; GPUs are used when asked for). A group
is what the local pipeline encodes in one call, so a distributed build equals a local one bit
for bit, codec included (k-means amplifies the last bits of its input into different centroids);
on GPU workers, whose kernels round differently, it equals a local build up to those bits. Once
the index has a codec (trained by the writer on the first ~1M tokens, as locally), it is shipped
to the actors, which compress their vectors too and send back codes and residuals (about a
tenth of float32 vectors); the writer only stores them. Each group comes back tagged with its
position, so the order never depends on which actor finished first.

Failures: Ray Data restarts an actor that dies and retries its batches (max_restarts and
max_task_retries are unbounded for map actors), so a killed worker costs a retry; nothing is
committed before the window's every chunk is back, and a run that fails leaves the last commit
(and the next run resumes as a local run would).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..engine import PreparedChunk, SearchEngine, WriteSession
from ..errors import InvalidRequestError
from ..model.locations import default_model, model_source

# Chunks per Ray Data dataset: a window long enough that starting the actors (loading the model)
# is a small part of it, short enough that memory holds it and a commit is never far away.
WINDOW_CHUNKS = 4096


def ray_or_error():
    try:
        import ray
    except ImportError:
        raise InvalidRequestError("distributed indexing needs Ray: pip install -e .[distributed]") from None
    return ray


def connect(address: str | None = None, num_cpus: int | None = None) -> Any:
    """Join the cluster at `address` ("auto", "ray://host:10001", "host:6379"), or start a local
    Ray instance (address None); already connected: reused."""
    # A Ray instance started here reports usage statistics to Ray's servers unless told not to:
    # off unless the user says otherwise (machines that index private documents are often offline).
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray = ray_or_error()
    if not ray.is_initialized():
        kwargs: dict[str, Any] = {"address": address, "ignore_reinit_error": True, "log_to_driver": False,
                                  "include_dashboard": False}
        if address is None and num_cpus is not None:
            kwargs["num_cpus"] = num_cpus
        ray.init(**kwargs)
    return ray


class ChunkEncoder:
    """A Ray Data map_batches actor: the model, loaded once, turns groups of chunk texts into
    token vectors, compressed by the index's codec when it has one. A row is one group, encoded
    by one call, as the local pipeline encodes each of its batches: the vectors come out bit for
    bit the same as a local build's (the encoder sorts a call's texts by length and pads within
    it, so the grouping is part of the result, to the last bits)."""

    def __init__(self, model: str, dtype: str = "float32", codec=None, threads: int = 1) -> None:
        import torch

        from ..model.encoder import ColBERTEncoder

        torch.set_num_threads(max(1, threads))
        self.encoder = ColBERTEncoder.from_pretrained(model, dtype=dtype)
        if torch.cuda.is_available():  # Ray made a GPU visible to this actor (num_gpus > 0)
            self.encoder.to("cuda")
        self.codec = codec

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, Any]:
        kill_marker = os.environ.get("LFM2_SEARCH_KILL_ENCODER_ONCE")
        if kill_marker and not os.path.exists(kill_marker):
            open(kill_marker, "w").close()  # tests: the first actor to get here dies like kill -9
            os._exit(137)
        out: dict[str, list] = {"group": [], "n_tokens": [], "vectors": [], "codes": [], "residuals": []}
        for group, texts in zip(batch["group"].tolist(), batch["texts"]):
            vectors = self.encoder.encode_documents([str(t) for t in texts])
            flat = np.concatenate(vectors).astype(np.float32, copy=False)
            out["group"].append(group)
            out["n_tokens"].append(np.array([len(v) for v in vectors], np.int64).tobytes())
            if self.codec is None:
                out["vectors"].append(flat.tobytes())
                out["codes"].append(b"")
                out["residuals"].append(b"")
            else:  # compressed here: about a tenth of the bytes travel back
                codes, residuals = self.codec.compress(flat)
                out["vectors"].append(b"")
                out["codes"].append(codes.tobytes())
                out["residuals"].append(residuals.tobytes())
        return {k: np.array(v, dtype=object) if k != "group" else np.array(v, np.int64) for k, v in out.items()}


class RayEncoding:
    """The ingestion pipeline's encoding step on Ray (see the module)."""

    def __init__(self, engine: SearchEngine, address: str | None = None, workers: int = 2, group_chunks: int = 256,
                 cpus_per_worker: float = 1.0, gpus_per_worker: float | None = None, window_chunks: int = WINDOW_CHUNKS,
                 local_cpus: int | None = None, env: dict[str, str] | None = None) -> None:
        """workers: encoder actors; group_chunks: chunks an actor encodes in one call (256, as
        the local pipeline's batches: builds then equal local ones to the bit; larger suits
        GPUs); window_chunks: chunks per Ray Data dataset, a multiple of group_chunks;
        gpus_per_worker: None uses the cluster's GPUs when it has some (one a worker, or a share
        of them when the workers outnumber them), 0 never; local_cpus: CPUs of a local Ray
        instance started here; env: environment variables of the actors (e.g. HF_HOME where
        models are cached on the nodes)."""
        if workers < 1 or group_chunks < 1 or window_chunks < 1:
            raise InvalidRequestError("workers, group size and window must be at least 1")
        self.engine = engine
        self.ray = connect(address, local_cpus)
        self.workers, self.group_chunks = workers, group_chunks
        if gpus_per_worker is None:
            gpus = float(self.ray.cluster_resources().get("GPU", 0.0))
            gpus_per_worker = min(1.0, gpus / workers) if gpus else 0.0
        self.cpus, self.gpus = cpus_per_worker, gpus_per_worker
        self.batch_chunks = max(1, window_chunks // group_chunks) * group_chunks
        self.env = dict(env or {})
        # The model the engine uses, named so that every node can load it (a folder or a hub id).
        self.model = model_source(engine._model) if engine._model else engine.model_source or default_model()
        self.dtype = engine._dtype
        self.windows = 0  # datasets run (for reports and tests)
        self.compressed_windows = 0  # of which the actors compressed with the shipped codec

    def stage(self, session: WriteSession, chunks: Sequence[PreparedChunk]) -> None:
        codec = session.codec
        groups = self._encode([c.text for c in chunks], codec)
        lengths = np.concatenate([np.frombuffer(g["n_tokens"], np.int64) for g in groups]).tolist()
        if codec is None:
            flat = np.frombuffer(b"".join(g["vectors"] for g in groups), np.float32).reshape(
                -1, self.engine.encoder.dim
            )
            session.add(chunks, np.split(flat, np.cumsum(lengths)[:-1]))
            return
        codes = np.frombuffer(b"".join(g["codes"] for g in groups), codec.code_dtype)
        residuals = np.frombuffer(b"".join(g["residuals"] for g in groups), np.uint8)
        session.add_encoded(chunks, codes, residuals.reshape(len(codes), -1), lengths)

    def _encode(self, texts: list[str], codec) -> list[dict[str, bytes]]:
        """One window through Ray Data: its groups' encodings, in the order of `texts`."""
        import ray.data

        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False
        context.print_on_execution_start = False
        logging.getLogger("ray.data").setLevel(logging.WARNING)  # a line per dataset is noise here
        size = self.group_chunks
        groups = [{"group": g, "texts": texts[start:start + size]}
                  for g, start in enumerate(range(0, len(texts), size))]
        dataset = ray.data.from_items(groups, override_num_blocks=len(groups))
        mapped = dataset.map_batches(
            ChunkEncoder, batch_size=1, compute=ray.data.ActorPoolStrategy(size=self.workers),
            num_cpus=self.cpus, num_gpus=self.gpus or None, batch_format="numpy",
            fn_constructor_kwargs={"model": self.model, "dtype": self.dtype, "codec": codec,
                                   "threads": max(1, int(self.cpus))},
            **({"runtime_env": {"env_vars": self.env}} if self.env else {}))
        out: list[dict[str, bytes] | None] = [None] * len(groups)
        for batch in mapped.iter_batches(batch_size=None, batch_format="numpy"):
            for j, g in enumerate(batch["group"].tolist()):
                out[g] = {k: batch[k][j] for k in ("n_tokens", "vectors", "codes", "residuals")}
        missing = sum(g is None for g in out)
        if missing:
            raise RuntimeError(f"the cluster returned {len(groups) - missing} of {len(groups)} groups of chunks")
        self.windows += 1
        self.compressed_windows += codec is not None
        return out
