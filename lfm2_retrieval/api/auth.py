"""API keys: `Authorization: Bearer <key>` on every endpoint but /health, the page and the docs,
when the server's settings hold one. Two scopes: the read-write key (LFM2_SEARCH_API_KEY) opens
everything; a read-only key (LFM2_SEARCH_READ_KEY) opens searching, facets and metrics, and a
write with it is 403 forbidden. Both dependencies are async: a key check never waits behind the
worker threads that searches fill (state.served says why)."""

from __future__ import annotations

import hmac

from fastapi import Depends
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


async def require_key(credentials: HTTPAuthorizationCredentials | None = Depends(bearer),
                      state: Served = Depends(served)) -> None:
    """Reading: the read-write key or the read-only one."""
    settings = state.settings
    if settings.api_key is None and settings.read_key is None:
        return
    given = _given(credentials)
    if not (_matches(given, settings.api_key) or _matches(given, settings.read_key)):
        raise _unauthorized()


async def require_write_key(credentials: HTTPAuthorizationCredentials | None = Depends(bearer),
                            state: Served = Depends(served)) -> None:
    """Writing: the read-write key only."""
    settings = state.settings
    if settings.api_key is None and settings.read_key is None:
        return
    given = _given(credentials)
    if _matches(given, settings.api_key):
        return
    if _matches(given, settings.read_key):
        raise ApiError(403, "forbidden", "this key may read, not write: writes need the read-write key")
    raise _unauthorized()
