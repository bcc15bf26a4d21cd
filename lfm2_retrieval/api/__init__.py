"""The HTTP API (FastAPI): `/search`, `/documents`, `/chunks`, `/health`, the search page.

    app.py        create_app: the app over one engine
    state.py      what requests share (engine, settings, batcher), on app.state
    routes/       the endpoints: search.py (and the page), documents.py, health.py
    schemas.py    request and response bodies (the search body is engine/request.py's)
    errors.py     every error as one JSON body, statuses from lfm2_retrieval/errors.py
    auth.py       the API key;  limits.py: the body size limit;  batching.py: query batches
    observability.py  access log, X-Request-ID, Prometheus metrics (GET /metrics)
    server.py     uvicorn, with a graceful stop
"""

from .app import create_app
from .batching import QueryBatcher
from .state import API_KEY_ENV, READ_KEY_ENV, ApiSettings

__all__ = ["API_KEY_ENV", "READ_KEY_ENV", "ApiSettings", "QueryBatcher", "create_app"]
