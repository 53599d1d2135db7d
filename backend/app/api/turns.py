"""Turn endpoints of a thread: resume a turn's stream, stop a running turn."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Header, Response, status
from fastapi.sse import EventSourceResponse
from pydantic import BaseModel

from app.api.deps import CurrentUserDep, DbSessionDep, OwnedThreadDep, TurnRunnerDep
from app.api.streaming import sse_stream
from app.errors import ERROR_RESPONSES, ErrorPublic

router = APIRouter(prefix="/threads", tags=["turns"], responses=ERROR_RESPONSES)


class TurnCancelPublic(BaseModel):
    turn_id: uuid.UUID
    status: str  # "cancelling": the turn's stream ends with its kept reply and `done`


@router.get(
    "/{thread_id}/turns/{turn_id}/events",
    responses={
        200: {"description": "The turn's remaining events", "content": {"text/event-stream": {}}},
        429: {"description": "LIMIT_OPEN_STREAMS: close a stream and retry", "model": ErrorPublic},
    },
)
async def resume_turn_events(
    *,
    thread: OwnedThreadDep,
    user: CurrentUserDep,
    turns: TurnRunnerDep,
    turn_id: uuid.UUID,
    last_event_id: Annotated[int, Header(ge=0, alias="Last-Event-ID")] = 0,
) -> Response:
    """Resume a turn's stream after the last event id a client saw (header Last-Event-ID).

    Works on any worker or node, while the turn runs and for TURN_REPLAY_SECONDS after it
    ended; later the finished turn is in the thread's messages (404 here). Resuming at or
    after the last event of a finished turn returns no events and closes. Each open resume
    counts against LIMIT_OPEN_STREAMS (429 over it).
    """
    slots = turns.stream_slots
    slot = await slots.acquire(user.id, exempt=user.is_admin)
    try:
        events = await turns.events(thread.id, turn_id)
    except BaseException:
        slots.release(slot)
        raise
    return EventSourceResponse(sse_stream(events, after=last_event_id, held=slots.holding(slot)))


@router.post(
    "/{thread_id}/turns/{turn_id}/cancel",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=TurnCancelPublic,
    responses={409: {"description": "The turn already ended", "model": ErrorPublic}},
)
async def cancel_turn(
    *, db: DbSessionDep, thread: OwnedThreadDep, turns: TurnRunnerDep, turn_id: uuid.UUID
) -> TurnCancelPublic:
    """Stop a running turn: its stream ends with the partial reply it kept, in both stores."""
    await turns.cancel(db, thread, turn_id)
    return TurnCancelPublic(turn_id=turn_id, status="cancelling")
