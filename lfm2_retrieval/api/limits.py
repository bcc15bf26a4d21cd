"""Limits on what one request or one caller may take: bodies over a size limit are refused (413)
before anything parses them; a caller over its request rate is answered 429 with Retry-After."""

from __future__ import annotations

import threading
import time

from .errors import error_response


class BodySizeLimit:
    """Reject request bodies over `limit` bytes with 413, whether or not Content-Length is sent."""

    def __init__(self, app, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            return await self._reject(scope, receive, send)
        chunks, size, more = [], 0, True
        while more:  # buffer the body (JSON bodies are read whole anyway), counting as it comes
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            more = message.get("more_body", False)
            if size > self.limit:
                return await self._reject(scope, receive, send)
        body, sent = b"".join(chunks), False

        async def replay():
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _reject(self, scope, receive, send) -> None:
        response = error_response(413, "body_too_large", f"request bodies are limited to {self.limit} bytes")
        await response(scope, receive, send)


class RateLimiter:
    """A token bucket per caller (its API key, else its address): `rate` requests a second on
    average, bursts of `burst`. One lock, a dict: cheap beside a search."""

    def __init__(self, rate: float, burst: float | None = None) -> None:
        self.rate, self.burst = rate, burst if burst is not None else max(1.0, 2 * rate)
        self._buckets: dict[str, tuple[float, float]] = {}  # caller -> (tokens, when)
        self._lock = threading.Lock()

    def wait_for(self, caller: str) -> float:
        """0 if `caller` may go now (a token is taken), else the seconds until it may."""
        now = time.monotonic()
        with self._lock:
            tokens, then = self._buckets.get(caller, (self.burst, now))
            tokens = min(self.burst, tokens + (now - then) * self.rate)
            if tokens >= 1.0:
                self._buckets[caller] = (tokens - 1.0, now)
                return 0.0
            self._buckets[caller] = (tokens, now)
            return (1.0 - tokens) / self.rate
