"""Micro-batching of concurrent queries through the encoder.

Encoding one query costs nearly as much wall time as encoding eight together on a CPU (the
matrices are tiny, the per-call overhead is not), so concurrent requests are better served
by one forward pass. Request threads put their queries on a queue and wait; one worker takes
whatever arrived within a short window (up to `max_batch` queries), encodes it in one call and
hands each caller its vectors.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future

import numpy as np

Encode = Callable[[list[str]], list[np.ndarray]]


class RequestCount:
    """How many requests are being served (a `with` block each), for QueryBatcher's `alone`."""

    def __init__(self) -> None:
        self.value = 0
        self._lock = threading.Lock()

    def __enter__(self) -> "RequestCount":
        with self._lock:
            self.value += 1
        return self

    def __exit__(self, *exc) -> None:
        with self._lock:
            self.value -= 1


class QueryBatcher:
    def __init__(self, encode: Encode, max_batch: int = 32, window_s: float = 0.002,
                 alone: Callable[[], bool] | None = None) -> None:
        """alone: whether the request whose queries arrived first is the only one being served;
        then no other can join its batch in time, and it is encoded without waiting the window
        (at one client the window would be a tenth of the request's time). None: always wait."""
        self.encode_fn = encode
        self.max_batch = max_batch
        self.window_s = window_s
        self.alone = alone
        self._queue: queue.Queue[tuple[list[str], Future] | None] = queue.Queue()
        self.batches = 0
        self.queries = 0
        self._lock = threading.Lock()
        self._worker: threading.Thread | None = None

    def encode(self, queries: list[str], timeout: float | None = 60.0) -> list[np.ndarray]:
        """Vectors of `queries` (blocks until the worker has encoded them)."""
        self._ensure_worker()
        future: Future = Future()
        self._queue.put((list(queries), future))
        return future.result(timeout)

    def _ensure_worker(self) -> None:
        # Started on first use, and again after close(): an ASGI app may see several lifespans.
        with self._lock:
            if self._worker is None or not self._worker.is_alive():
                self._worker = threading.Thread(target=self._run, name="query-batcher", daemon=True)
                self._worker.start()

    def close(self) -> None:
        with self._lock:
            if self._worker is not None and self._worker.is_alive():
                self._queue.put(None)
                self._worker.join(timeout=5)
            self._worker = None

    @property
    def mean_batch(self) -> float:
        return self.queries / self.batches if self.batches else 0.0

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            items = [item]
            size = len(item[0])
            wait = self.alone is None or not self.alone()
            while size < self.max_batch:
                try:  # alone: only what is queued already joins
                    nxt = self._queue.get(timeout=self.window_s) if wait else self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    self._queue.put(None)  # finish this batch, then stop
                    break
                items.append(nxt)
                size += len(nxt[0])
            self._encode(items)

    def _encode(self, items: list[tuple[list[str], Future]]) -> None:
        texts = [q for queries, _ in items for q in queries]
        try:
            vectors = self.encode_fn(texts)
        except Exception:
            for queries, future in items:
                try:
                    future.set_result(self.encode_fn(queries))
                except Exception as exc:
                    future.set_exception(exc)
            return
        self.batches += 1
        self.queries += len(texts)
        start = 0
        for queries, future in items:
            future.set_result(vectors[start:start + len(queries)])
            start += len(queries)
