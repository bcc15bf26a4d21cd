"""Running the API under uvicorn so that it always stops: `lfm2-search serve`.

Idle keep-alive connections close after 5 s. A SIGTERM or Ctrl-C lets requests in flight finish
for `shutdown_timeout` seconds, and the process ends at most 2 s later whatever its worker
threads are doing: uvicorn's own timeout cancels tasks, but a task waiting on a worker thread
(every search) waits for the thread, and Python waits for worker threads at exit (once over two
minutes under load).
"""

from __future__ import annotations

import os
import sys
import threading

import uvicorn

GRACE_AFTER_TIMEOUT_S = 2.0
# glibc gives each thread that allocates its own malloc arena (up to 8 per core), and memory
# freed in one is not reused by another: under 16 concurrent searchers and a writer the server
# reached 2.1 GB in 10 minutes (a fresh one on the same index holds 0.7 GB). With two arenas:
# 1.3 GB, level over the second half, at the same searches a second (eval/soak.py).
MALLOC_ARENAS = 2
M_ARENA_MAX = -8  # glibc's mallopt parameter


def limit_malloc_arenas(arenas: int = MALLOC_ARENAS) -> bool:
    """Cap glibc's malloc arenas (as MALLOC_ARENA_MAX would) for threads started after this call;
    False where the C library is not glibc. An explicit MALLOC_ARENA_MAX is left as it is."""
    if os.environ.get("MALLOC_ARENA_MAX"):
        return False
    try:
        import ctypes

        return ctypes.CDLL("libc.so.6").mallopt(M_ARENA_MAX, arenas) == 1
    except (OSError, AttributeError):
        return False


def exit_now() -> None:
    """End the process without waiting for worker threads. Nothing they hold needs an orderly
    end: a write cut short is rolled back as after kill -9, the writer lock is the kernel's."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


class StoppingServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, shutdown_timeout: float) -> None:
        super().__init__(config)
        self._shutdown_timeout = shutdown_timeout
        self._deadline: threading.Timer | None = None

    def handle_exit(self, sig, frame) -> None:
        if self._deadline is None:
            self._deadline = threading.Timer(self._shutdown_timeout + GRACE_AFTER_TIMEOUT_S, exit_now)
            self._deadline.daemon = True
            self._deadline.start()
        super().handle_exit(sig, frame)


def serve(app, host: str, port: int, shutdown_timeout: float = 10.0) -> None:
    """Serve `app` until SIGTERM or Ctrl-C, then end the process (it does not return)."""
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", timeout_keep_alive=5,
                            timeout_graceful_shutdown=shutdown_timeout)
    StoppingServer(config, shutdown_timeout).run()
    exit_now()
