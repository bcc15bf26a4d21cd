"""Calling a client from a framework's sync or async method, whichever the client is: an
AsyncClient's coroutine awaited, a blocking client's call run in a worker thread (never on the
event loop), and a clear error when sync code is given an AsyncClient."""

from __future__ import annotations

import asyncio
import inspect
from typing import Any


async def call(method, *args: Any, **kwargs: Any) -> Any:
    """`method(*args, **kwargs)` from async code: awaited if it is a coroutine function, else in
    a worker thread."""
    if inspect.iscoroutinefunction(method):
        return await method(*args, **kwargs)
    return await asyncio.to_thread(method, *args, **kwargs)


def blocking(result: Any, async_name: str) -> Any:
    """A sync call's result, or a TypeError naming the async method to use when the client was
    an AsyncClient (its coroutine is closed, never left unawaited)."""
    if inspect.iscoroutine(result):
        result.close()
        raise TypeError(f"this client is an AsyncClient: call `{async_name}`, or give it a Client")
    return result
