"""How a started turn is answered: its events as Server-Sent Events, or JSON when asked.

Shared by the endpoints that start a turn (send, retry) and the one that resumes a stream.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager

from fastapi import Request, Response
from fastapi.responses import JSONResponse
from fastapi.sse import KEEPALIVE_COMMENT, EventSourceResponse, format_sse_event
from sqlmodel.ext.asyncio.session import AsyncSession

from app.errors import ErrorPublic, error_body
from app.turns.log import FollowableLog
from app.turns.runner import TurnRunner
from app.turns.turn import RunningTurn, TurnResult

KEEPALIVE_SECONDS = 15.0
DEFAULT_RETRY_AFTER_SECONDS = 5

TURN_RESPONSES: dict[int | str, dict[str, object]] = {
    200: {
        "description": "The reply: an SSE stream, or with `Accept: application/json` the "
        "finished turn",
        "content": {"text/event-stream": {}, "application/json": {}},
    },
    409: {"description": "A reply is already being generated", "model": ErrorPublic},
    429: {
        "description": "A fair-use limit: `limit` names it, `resets_at` says when it resets "
        "(null: when one of your running turns ends); retry after Retry-After",
        "model": ErrorPublic,
    },
}


async def start_and_respond(
    request: Request, db: AsyncSession, turns: TurnRunner, turn: RunningTurn
) -> Response:
    """Commit what opening the turn wrote, start it, and answer with its events."""
    try:
        await db.commit()  # before streaming: the dependency would only commit at the end
    except BaseException:
        await turns.abandon(turn)
        raise
    turns.start(turn)
    if wants_json(request):
        return turn_json_response(await asyncio.shield(turn.result))
    return EventSourceResponse(sse_stream(turn.log))


def wants_json(request: Request) -> bool:
    """JSON only when asked for explicitly; browsers and SSE clients get the stream."""
    accept = request.headers.get("accept", "")
    return "application/json" in accept and "text/event-stream" not in accept


def turn_json_response(result: TurnResult) -> JSONResponse:
    body = result.model_dump(mode="json")
    if result.error is None:
        return JSONResponse(body)
    error = result.error
    # Retryable: 503 with when to retry (the provider's Retry-After when it gave one).
    retry_after = str(error.retry_after_seconds or DEFAULT_RETRY_AFTER_SECONDS)
    # code, retryable and, when the class has them, retry_after_seconds and setting.
    fields = {k: v for k, v in error.model_dump().items() if k != "message"}
    return JSONResponse(
        error_body("TurnFailed", error.message, **fields, turn=body),
        status_code=503 if error.retryable else 502,
        headers={"Retry-After": retry_after} if error.retryable else None,
    )


async def sse_stream(
    log: FollowableLog,
    after: int = 0,
    held: AbstractAsyncContextManager[None] | None = None,
) -> AsyncIterator[bytes]:
    """The turn's events after id `after` as SSE, with keep-alives while the model thinks;
    `held` (an open stream slot) is held while the stream runs."""
    async with held or contextlib.nullcontext():
        async for event in log.follow(after, idle_timeout_s=KEEPALIVE_SECONDS):
            if event is None:
                yield KEEPALIVE_COMMENT
                continue
            sequence, kind, data = event
            yield format_sse_event(data_str=data, event=kind, id=str(sequence))
