"""Encoding on a Ray cluster: `lfm2-search index PATH... --ray [ADDRESS]`.

    encoding = RayEncoding(engine, address=None, workers=2)   # None: a local Ray instance
    Ingestor(engine, encoding=encoding).run(["docs/"])

Only encoding moves: the ingestion pipeline still reads, chunks and commits on this machine
(the one holding the documents and the index), so incremental runs, commits between files and
crash safety are those of a local run. Each window of staged chunks (`batch_chunks`) becomes a
Ray Data dataset mapped by `map_batches` over a pool of stateful ChunkEncoder actors (the model
is loaded once per actor; GPUs are used when asked for). Once the index has a codec (trained by
the writer on the first ~1M tokens, as locally), it is shipped to the actors, which compress
their vectors too and send back codes and residuals (about a tenth of float32 vectors); the
writer only stores them. The window's rows come back tagged with their position, so their order
never depends on which actor finished first.

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
    ray = ray_or_error()
    if not ray.is_initialized():
        kwargs: dict[str, Any] = {"address": address, "ignore_reinit_error": True, "log_to_driver": False,
                                  "include_dashboard": False}
        if address is None and num_cpus is not None:
            kwargs["num_cpus"] = num_cpus
        ray.init(**kwargs)
    return ray


class ChunkEncoder:
    """A Ray Data map_batches actor: the model, loaded once, turns a batch of chunk texts into
    token vectors, compressed by the index's codec when it has one."""

    def __init__(self, model: str, dtype: str = "float32", codec=None, threads: int = 1) -> None:
        import torch

        from ..model.encoder import ColBERTEncoder

        torch.set_num_threads(max(1, threads))
        self.encoder = ColBERTEncoder.from_pretrained(model, dtype=dtype)
        self.codec = codec

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, Any]:
        kill_marker = os.environ.get("LFM2_SEARCH_KILL_ENCODER_ONCE")
        if kill_marker and not os.path.exists(kill_marker):
            open(kill_marker, "w").close()  # tests: the first actor to get here dies like kill -9
            os._exit(137)
        vectors = self.encoder.encode_documents([str(t) for t in batch["text"]])
        out: dict[str, Any] = {"row": np.asarray(batch["row"], np.int64),
                               "n_tokens": np.array([len(v) for v in vectors], np.int64)}
        if self.codec is None:
            out["vectors"] = np.array([np.asarray(v, np.float32).tobytes() for v in vectors], dtype=object)
        else:
            codes, residuals = zip(*(self.codec.compress(v) for v in vectors))
            out["codes"] = np.array([np.asarray(c).tobytes() for c in codes], dtype=object)
            out["residuals"] = np.array([np.asarray(r).tobytes() for r in residuals], dtype=object)
        return out


class RayEncoding:
    """The ingestion pipeline's encoding step on Ray (see the module)."""

    def __init__(self, engine: SearchEngine, address: str | None = None, workers: int = 2, batch_size: int = 64,
                 cpus_per_worker: float = 1.0, gpus_per_worker: float = 0.0, window_chunks: int = WINDOW_CHUNKS,
                 local_cpus: int | None = None, env: dict[str, str] | None = None) -> None:
        """workers: encoder actors; batch_size: chunks per actor call; window_chunks: chunks per
        Ray Data dataset; local_cpus: CPUs of a local Ray instance started here; env: environment
        variables of the actors (e.g. HF_HOME where models are cached on the nodes)."""
        if workers < 1 or batch_size < 1 or window_chunks < 1:
            raise InvalidRequestError("workers, batch size and window must be at least 1")
        self.engine = engine
        self.ray = connect(address, local_cpus)
        self.workers, self.batch_size = workers, batch_size
        self.cpus, self.gpus = cpus_per_worker, gpus_per_worker
        self.batch_chunks = window_chunks
        self.env = dict(env or {})
        # The model the engine uses, named so that every node can load it (a folder or a hub id).
        self.model = model_source(engine._model) if engine._model else engine.model_source or default_model()
        self.dtype = engine._dtype
        self.windows = 0  # datasets run (for reports and tests)
        self.compressed_windows = 0  # of which the actors compressed with the shipped codec

    def stage(self, session: WriteSession, chunks: Sequence[PreparedChunk]) -> None:
        codec = session.codec
        rows = self._encode([c.text for c in chunks], codec)
        lengths = rows["n_tokens"].tolist()
        if codec is None:
            dim = self.engine.encoder.dim
            vectors = [np.frombuffer(b, np.float32).reshape(n, dim) for b, n in zip(rows["vectors"], lengths)]
            session.add(chunks, vectors)
            return
        width = codec.dim * codec.nbits // 8
        codes = np.frombuffer(b"".join(rows["codes"]), codec.code_dtype)
        residuals = np.frombuffer(b"".join(rows["residuals"]), np.uint8).reshape(-1, width)
        session.add_encoded(chunks, codes, residuals, lengths)

    def _encode(self, texts: list[str], codec) -> dict[str, list]:
        """One window through Ray Data; its rows in the order of `texts`."""
        import ray.data

        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False
        context.print_on_execution_start = False
        logging.getLogger("ray.data").setLevel(logging.WARNING)  # a line per dataset is noise here
        blocks = max(1, min(len(texts), self.workers * 4))  # every actor gets work, in a few rounds
        dataset = ray.data.from_items([{"row": i, "text": t} for i, t in enumerate(texts)],
                                      override_num_blocks=blocks)
        mapped = dataset.map_batches(
            ChunkEncoder, batch_size=self.batch_size, compute=ray.data.ActorPoolStrategy(size=self.workers),
            num_cpus=self.cpus,
            num_gpus=self.gpus or None, batch_format="numpy",
            fn_constructor_kwargs={"model": self.model, "dtype": self.dtype, "codec": codec,
                                   "threads": max(1, int(self.cpus))},
            **({"runtime_env": {"env_vars": self.env}} if self.env else {}))
        keys = ["n_tokens", "vectors"] if codec is None else ["n_tokens", "codes", "residuals"]
        out: dict[str, list] = {k: [None] * len(texts) for k in keys}
        got = 0
        for batch in mapped.iter_batches(batch_size=None, batch_format="numpy"):
            for j, row in enumerate(batch["row"].tolist()):
                for k in keys:
                    out[k][row] = batch[k][j]
                got += 1
        if got != len(texts):
            raise RuntimeError(f"the cluster returned {got} of {len(texts)} encoded chunks")
        self.windows += 1
        self.compressed_windows += codec is not None
        out["n_tokens"] = np.asarray(out["n_tokens"], np.int64)
        return out
