"""Refusals, and how a ChatKit client is told about them.

A request that does not parse as ChatKit, and any refusal of a non-streaming request, is an
HTTP error in the API's one shape (`{"error", "detail"}`): 404 for a thread or item that is
not the caller's (ChatKit's `NotFoundError`, exactly as for one that does not exist), 409, 422,
... A streaming request always answers `text/event-stream`; a refusal there is ChatKit's own
`ErrorEvent` with a message that says what was wrong, which ChatKit's UI shows to the user.
"""

from __future__ import annotations

import psycopg
from chatkit.errors import ErrorCode
from chatkit.store import NotFoundError as ChatKitNotFoundError
from chatkit.types import ErrorEvent
from sqlalchemy.exc import DBAPIError, TimeoutError as PoolTimeoutError

from app.errors import AppError, NotFoundError, ServiceUnavailableError

DATABASE_UNAVAILABLE = "The database is unavailable; retry shortly"


class NotSupportedError(AppError):
    """A ChatKit request this server or its agent does not offer (attachments, actions...)."""

    status_code = 400


def as_app_error(error: Exception) -> AppError | None:
    """The API error a ChatKit refusal is (its not-found is our 404; the database out of
    reach our 503, as in REST), or None if unexpected."""
    if isinstance(error, AppError):
        return error
    if isinstance(error, ChatKitNotFoundError):
        return NotFoundError(str(error))
    if is_database_outage(error):
        return ServiceUnavailableError(DATABASE_UNAVAILABLE)
    return None


def is_database_outage(error: Exception) -> bool:
    """The pool had no connection in time, or the connection failed (not a bug: retry)."""
    if isinstance(error, PoolTimeoutError):
        return True
    return isinstance(error, DBAPIError) and (
        error.connection_invalidated or isinstance(error.orig, psycopg.OperationalError)
    )


def error_event(error: Exception) -> ErrorEvent:
    """The ChatKit event for a refusal; anything unexpected is ChatKit's generic error."""
    refusal = as_app_error(error)
    if refusal is None:
        return ErrorEvent(code=ErrorCode.STREAM_ERROR, allow_retry=True)
    # A busy thread (409), a fair-use limit (429, whose message says when it resets) and an
    # outage (503) are worth trying again; bad input is not.
    retry = refusal.status_code in (409, 429, 503)
    return ErrorEvent(code="custom", message=refusal.message, allow_retry=retry)
