"""The API key: `Authorization: Bearer <key>` on every endpoint but /health, the page and the
docs, when the server's settings hold one (LFM2_SEARCH_API_KEY)."""

from __future__ import annotations

import hmac

from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from .errors import ApiError
from .state import API_KEY_ENV, Served, served

bearer = HTTPBearer(auto_error=False, description=f"Required when the server has {API_KEY_ENV} set")


async def require_key(credentials: HTTPAuthorizationCredentials | None = Depends(bearer),
                state: Served = Depends(served)) -> None:
    expected = state.settings.api_key
    if expected is None:
        return
    given = credentials.credentials if credentials else ""
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise ApiError(401, "unauthorized", "a valid API key is required: Authorization: Bearer <key>",
                       headers={"WWW-Authenticate": "Bearer"})
# Async for the reason of state.served: a key check never waits behind busy worker threads.
