"""Every error as one JSON body, `ErrorResponse`, with its status from lfm2_retrieval/errors.py's
table: the package's own errors, invalid bodies (422), bodies that are not JSON, a full disk or
no descriptors left (OSError), and anything unexpected (500, logged)."""

from __future__ import annotations

import json
import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..errors import IndexDamagedError, SearchError, as_search_error
from ..index.filters import MAX_FILTER_DEPTH
from .schemas import ErrorResponse

log = logging.getLogger("lfm2_search.api")


class ApiError(SearchError):
    """An answer only HTTP has (401 unauthorized), answered by the same handler as the rest."""

    def __init__(self, status: int, error: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.http_status, self.code, self.headers = status, error, headers


def error_response(status: int, error: str, message: str, detail=None, headers=None) -> JSONResponse:
    body = ErrorResponse(error=error, message=message, detail=detail).model_dump()
    return JSONResponse(body, status_code=status, headers=headers)


def answer_error(known: SearchError) -> JSONResponse:
    detail = None
    if isinstance(known, IndexDamagedError):
        detail = {"part": known.part, "problem": known.problem}
    if known.http_status >= 500:
        log.error("%s: %s", known.code, known)
    headers = getattr(known, "headers", None) or (
        {"Retry-After": str(known.retry_after)} if known.retry_after else None)
    return error_response(known.http_status, known.code, str(known), detail, headers=headers)


async def invalid_body(request: Request, exc: RequestValidationError) -> JSONResponse:
    for problem in exc.errors():  # a filter's own error keeps its status (400 invalid_filter)
        cause = (problem.get("ctx") or {}).get("error")
        if isinstance(cause, SearchError) and cause.http_status != 422:
            return answer_error(cause)
    details = json.loads(json.dumps(exc.errors(), default=str))
    for d in details:
        d.pop("input", None)  # do not echo (possibly huge) inputs back
        d.pop("ctx", None)
    first = details[0] if details else {}
    where = ".".join(str(p) for p in first.get("loc", ())[1:]) or "body"
    return error_response(422, "invalid_request", f"{where}: {first.get('msg', 'invalid request')}", details)


async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    if exc.status_code == 400 and "parsing the body" in str(exc.detail):
        if isinstance(exc.__cause__, RecursionError):
            return error_response(400, "invalid_request", "body: JSON nested too deeply (filters may nest "
                                  f"{MAX_FILTER_DEPTH} levels of $or and $and)")
        # FastAPI's answer to bytes that are not UTF-8: the same class of error as bad JSON.
        return error_response(422, "invalid_request", "body: not valid UTF-8 JSON")
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    return error_response(exc.status_code, code, str(exc.detail), headers=getattr(exc, "headers", None))


async def search_error(request: Request, exc: SearchError) -> JSONResponse:
    return answer_error(exc)


async def os_error(request: Request, exc: OSError) -> JSONResponse:
    engine = request.app.state.served.engine
    known = as_search_error(exc, engine.path, engine.commit)  # a full disk: 507
    return answer_error(known) if known else await unexpected(request, exc)


async def unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    return error_response(500, "internal_error", f"{type(exc).__name__}: {exc}")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, invalid_body)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(SearchError, search_error)
    app.add_exception_handler(OSError, os_error)
    app.add_exception_handler(Exception, unexpected)
