"""API keys: `Authorization: Bearer <key>` on every endpoint but /health, the page and the docs,
when the server's settings hold one. Two scopes: the read-write key (LFM2_SEARCH_API_KEY) opens
everything; a read-only key (LFM2_SEARCH_READ_KEY) opens searching, facets and metrics, and a
write with it is 403 forbidden. With a rate limit set, a caller (its key, else its address)
over it is answered 429 rate_limited with Retry-After. Both dependencies are async: a key check never waits behind the
worker threads that searches fill (state.served says why)."""

from __future__ import annotations

import hmac
import math

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from .errors import ApiError
from .state import API_KEY_ENV, Served, served

bearer = HTTPBearer(auto_error=False, description=f"Required when the server has {API_KEY_ENV} set")


def _matches(given: str, expected: str | None) -> bool:
    return expected is not None and hmac.compare_digest(given.encode(), expected.encode())


def _given(credentials: HTTPAuthorizationCredentials | None) -> str:
    return credentials.credentials if credentials else ""


def _unauthorized() -> ApiError:
    return ApiError(401, "unauthorized", "a valid API key is required: Authorization: Bearer <key>",
                    headers={"WWW-Authenticate": "Bearer"})


def _within_rate(state: Served, credentials: HTTPAuthorizationCredentials | None, request: Request) -> None:
    """429 with Retry-After when the caller (its key, else its address) is over the rate limit."""
    if state.rates is None:
        return
    caller = "key:" + _given(credentials) if credentials else "ip:" + (request.client.host if request.client else "?")
    wait = state.rates.wait_for(caller)
    if wait > 0:
        raise ApiError(429, "rate_limited", f"over {state.settings.rate_limit:g} requests a second; retry in "
                       f"{wait:.1f} s", headers={"Retry-After": str(max(1, math.ceil(wait)))})


async def require_key(request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(bearer),
                      state: Served = Depends(served)) -> None:
    """Reading: the read-write key or the read-only one (and the caller's rate)."""
    settings = state.settings
    if settings.api_key is not None or settings.read_key is not None:
        given = _given(credentials)
        if not (_matches(given, settings.api_key) or _matches(given, settings.read_key)):
            raise _unauthorized()
    _within_rate(state, credentials, request)


async def require_write_key(request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(bearer),
                            state: Served = Depends(served)) -> None:
    """Writing: the read-write key only (and the caller's rate)."""
    settings = state.settings
    if settings.api_key is not None or settings.read_key is not None:
        given = _given(credentials)
        if _matches(given, settings.read_key) and not _matches(given, settings.api_key):
            raise ApiError(403, "forbidden", "this key may read, not write: writes need the read-write key")
        if not _matches(given, settings.api_key):
            raise _unauthorized()
    _within_rate(state, credentials, request)
