"""Domain errors and the handlers that render every error in one JSON shape.

Every error response is `{"error": <kind>, "detail": <human message>}` (plus `errors` for
request validation), so a client can handle failures without parsing prose.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any, ClassVar

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.exc import DBAPIError, TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException

logger = logging.getLogger(__name__)

DB_RETRY_AFTER_SECONDS = 5


class AppError(Exception):
    """Base of errors a service raises on purpose; the class decides the status code."""

    status_code: ClassVar[int] = 400
    headers: ClassVar[dict[str, str] | None] = None
    kind: ClassVar[str | None] = None  # the `error` clients see; default: the class name

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def fields(self) -> dict[str, Any]:
        """Fields of the error body beyond `error` and `detail` (none by default)."""
        return {}

    def response_headers(self) -> dict[str, str] | None:
        """Headers of the error response (the class's by default)."""
        return self.headers


class BadRequestError(AppError):
    status_code = 400


class UnauthorizedError(AppError):
    status_code = 401
    headers: ClassVar[dict[str, str] | None] = {"WWW-Authenticate": "Bearer"}


class ForbiddenError(AppError):
    status_code = 403


class NotFoundError(AppError):
    status_code = 404


class ConflictError(AppError):
    status_code = 409


class UnprocessableError(AppError):
    """Input that parsed but breaks a configured limit (the limit lives in settings)."""

    status_code = 422


class PayloadTooLargeError(AppError):
    status_code = 413


class LimitExceededError(AppError):
    """A fair-use limit (LIMIT_* settings) refused a turn: which one, and when it resets.

    `resets_at` is None for the running-turns limit, which resets when one of the user's
    running turns ends; `retry_after_seconds` is then a short poll interval.
    """

    status_code = 429
    kind = "LimitExceeded"

    def __init__(
        self,
        message: str,
        *,
        limit: str,
        value: int,
        resets_at: datetime | None,
        retry_after_seconds: int,
    ) -> None:
        super().__init__(message)
        self.limit, self.value, self.resets_at = limit, value, resets_at
        self.retry_after_seconds = max(1, retry_after_seconds)

    def fields(self) -> dict[str, Any]:
        return {
            "limit": self.limit,
            "value": self.value,
            "resets_at": None if self.resets_at is None else self.resets_at.isoformat(),
            "retry_after_seconds": self.retry_after_seconds,
        }

    def response_headers(self) -> dict[str, str] | None:
        return {"Retry-After": str(self.retry_after_seconds)}


class ServiceUnavailableError(AppError):
    status_code = 503
    headers: ClassVar[dict[str, str] | None] = {"Retry-After": str(DB_RETRY_AFTER_SECONDS)}


def error_body(kind: str, detail: str, **extra: Any) -> dict[str, Any]:
    return {"error": kind, "detail": detail, **extra}


class ErrorPublic(BaseModel):
    """Every error response: a stable kind, a message for humans, and for 422 the details."""

    error: str
    detail: str
    errors: list[dict[str, Any]] | None = None


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "model": ErrorPublic}


# Declared on every router so the OpenAPI schema describes the real error bodies (FastAPI's
# default 422 schema is replaced by ours).
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: _error("Bad request (for example an unknown cursor)"),
    401: _error("Missing or invalid bearer token"),
    404: _error("No such thread for this user"),
    413: _error("Request body over MAX_REQUEST_BYTES"),
    422: _error("Invalid input"),
    503: _error("The database or a memory file is unavailable; retry after Retry-After"),
}


async def _app_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AppError)
    return JSONResponse(
        error_body(exc.kind or type(exc).__name__, exc.message, **exc.fields()),
        exc.status_code,
        headers=exc.response_headers(),
    )


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = jsonable_encoder(exc.errors(), exclude={"input", "ctx", "url"})
    parts = []
    for error in errors:
        where = ".".join(str(p) for p in error.get("loc", ()) if p != "body") or "body"
        parts.append(f"{where}: {_not_an_object(request, error) or error.get('msg')}")
    return JSONResponse(error_body("ValidationError", "; ".join(parts), errors=errors), 422)


def _not_an_object(request: Request, error: dict[str, Any]) -> str | None:
    """What to say when the body is not a JSON object, in place of pydantic's "Input should
    be a valid dictionary or object to extract fields from" (what `curl -d` without a JSON
    content type gets: FastAPI reads such a body as text, never as JSON)."""
    if tuple(error.get("loc", ())) != ("body",) or error.get("type") != "model_attributes_type":
        return None
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "application/json" or content_type.endswith("+json"):
        return "a JSON object is expected"
    return (
        "a JSON object is expected, with the header Content-Type: application/json "
        f"(this request's content type: {content_type or 'none'})"
    )


async def _http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    kind = {404: "NotFoundError", 405: "MethodNotAllowed", 413: "PayloadTooLargeError"}.get(
        exc.status_code, "HTTPError"
    )
    return JSONResponse(
        error_body(kind, str(exc.detail)), exc.status_code, headers=getattr(exc, "headers", None)
    )


async def _database_unavailable(_: Request, exc: Exception) -> JSONResponse:
    # A connection-level failure is an outage, not a bug: tell the client to retry.
    logger.warning("Database unavailable: %s", type(exc).__name__)
    return JSONResponse(
        error_body("ServiceUnavailableError", "The database is unavailable; retry shortly"),
        503,
        headers={"Retry-After": str(DB_RETRY_AFTER_SECONDS)},
    )


async def _db_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DBAPIError)
    if exc.connection_invalidated or _is_connection_error(exc):
        return await _database_unavailable(request, exc)
    logger.exception("Database error on %s %s", request.method, request.url.path)
    return JSONResponse(error_body("InternalError", "Internal error"), 500)


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    """The last resort: whatever escaped every other handler is a JSON 500, never plain text.

    Starlette's ServerErrorMiddleware calls this and re-raises, so the error is still logged
    with its traceback by the server; the client only learns that it was internal.
    """
    logger.error("Unhandled %s on %s %s", type(exc).__name__, request.method, request.url.path)
    return JSONResponse(error_body("InternalError", "Internal error"), 500)


def _is_connection_error(exc: DBAPIError) -> bool:
    import psycopg

    return isinstance(exc.orig, psycopg.OperationalError)


def register_exception_handlers(app: FastAPI) -> None:
    app.add_exception_handler(AppError, _app_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(DBAPIError, _db_error)
    app.add_exception_handler(PoolTimeoutError, _database_unavailable)
    app.add_exception_handler(Exception, _unexpected_error)
