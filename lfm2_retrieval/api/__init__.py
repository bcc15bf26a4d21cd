"""The HTTP API (FastAPI): `/search`, `/documents`, `/health`."""

from .app import API_KEY_ENV, ApiSettings, create_app
from .batching import QueryBatcher

__all__ = ["API_KEY_ENV", "ApiSettings", "QueryBatcher", "create_app"]
