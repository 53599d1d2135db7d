"""`POST /chatkit`: the ChatKit protocol, authenticated like every other endpoint.

The caller comes from the same bearer-JWT dependency as `/api` (handed in by `app.main`,
since this package and `app.api` sit side by side in the layers). A non-streaming request is
answered with JSON, a streaming one with Server-Sent Events: ChatKit's own events, plus a
`: ping` comment every KEEPALIVE_SECONDS while the model works (as the REST stream does).

A client that leaves a ChatKit stream before it ends (ChatKit's stop button aborts the
request) stops the turn, which keeps its partial reply in both stores, exactly like
`POST /api/threads/{id}/turns/{turn_id}/cancel`.

(No `from __future__ import annotations` here: FastAPI must resolve the endpoint's
`Depends(current_user)`, a closure variable, from the live annotation.)
"""

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated, Any, Protocol

from chatkit.server import NonStreamingResult, StreamingResult
from chatkit.store import NotFoundError as ChatKitNotFoundError
from chatkit.types import ErrorEvent
from fastapi import APIRouter, Depends, Request, Response
from fastapi.sse import KEEPALIVE_COMMENT, EventSourceResponse

from app.chatkit.context import ChatKitContext
from app.chatkit.errors import as_app_error, error_event, is_database_outage
from app.chatkit.server import ThreadkeeperChatKitServer
from app.errors import ERROR_RESPONSES, NotFoundError

logger = logging.getLogger(__name__)

KEEPALIVE_SECONDS = 15.0
# Frames a slow client may leave unread before the ChatKit stream waits for it.
STREAM_BUFFER_FRAMES = 64
_BACKGROUND: set[asyncio.Task[None]] = set()


class Caller(Protocol):
    """Who is asking (the API's current user)."""

    @property
    def id(self) -> uuid.UUID: ...

    @property
    def is_admin(self) -> bool: ...


# A FastAPI dependency: a coroutine, or a generator that yields the caller once.
CallerDependency = Callable[..., Awaitable[Caller] | AsyncIterator[Caller]]


def chatkit_router(current_user: CallerDependency) -> APIRouter:
    """The `/chatkit` endpoint, authenticating with `current_user` (the API's dependency)."""
    _adopt_chatkit_logger()
    router = APIRouter(tags=["chatkit"])

    @router.post(
        "/chatkit",
        responses={
            **ERROR_RESPONSES,
            200: {
                "description": "ChatKit's JSON answer, or its event stream (SSE)",
                "content": {"application/json": {}, "text/event-stream": {}},
            },
            409: {"description": "A reply is being generated (threads.delete)"},
        },
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": {"type": "object"}}},
                "description": "A ChatKit request: `{type, params}` (see chatkit.types)",
            }
        },
    )
    async def chatkit(
        *, request: Request, user: Annotated[Caller, Depends(current_user, scope="function")]
    ) -> Response:
        """The ChatKit protocol on your threads (every request type; see the README)."""
        context = _context(request, user)
        try:
            result = await ThreadkeeperChatKitServer().process(await request.body(), context)
        except ChatKitNotFoundError as e:
            raise NotFoundError(str(e)) from e
        if isinstance(result, NonStreamingResult):
            return Response(result.json, media_type="application/json")
        return EventSourceResponse(_stream(result, context))

    return router


def _context(request: Request, user: Caller) -> ChatKitContext:
    return ChatKitContext(
        user_id=user.id,
        is_admin=user.is_admin,
        settings=request.app.state.settings,
        sessionmaker=request.state.sessionmaker,
        runner=request.state.turn_runner,
        memory_store=request.state.memory_store,
        agents=request.state.agents,
    )


async def _stream(result: StreamingResult, context: ChatKitContext) -> AsyncIterator[bytes]:
    """The stream's frames, pings while it is quiet; leaving early stops the turn.

    The ChatKit stream runs in a task of its own (the pump), so that this generator can wait
    on it with a timeout, and so that a client's abort reaches it as a plain cancellation
    (`handle_stream_cancelled`) rather than inside the server's cancelled scope.
    """
    queue: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=STREAM_BUFFER_FRAMES)
    pump = asyncio.get_running_loop().create_task(_pump(result, queue), name="chatkit-stream")
    _BACKGROUND.add(pump)
    pump.add_done_callback(_BACKGROUND.discard)
    finished = False
    try:
        while True:
            try:
                async with asyncio.timeout(KEEPALIVE_SECONDS):
                    frame = await queue.get()
            except TimeoutError:
                yield KEEPALIVE_COMMENT
                continue
            if frame is None:
                finished = True
                return
            yield frame
    finally:
        if not finished:
            context.stop_turn()  # the client left mid-stream: ChatKit's stop
            pump.cancel()


async def _pump(result: StreamingResult, queue: asyncio.Queue[bytes | None]) -> None:
    try:
        async for frame in result:
            await queue.put(frame)
    except Exception as e:
        if as_app_error(e) is None:
            logger.exception("ChatKit stream failed")
        elif is_database_outage(e):
            logger.warning("Database unavailable: %s", type(e).__name__)
        await queue.put(sse_frame(error_event(e)))
    await queue.put(None)


def sse_frame(event: ErrorEvent) -> bytes:
    """One event as ChatKit frames it (`ChatKitServer._serialize`, then `data:`)."""
    return b"data: " + event.model_dump_json(by_alias=True, exclude_none=True).encode() + b"\n\n"


class _ExpectedRefusals(logging.Filter):
    """Drops the library's error log for a refusal (not found, busy thread, bad input): those
    are answers, and the client gets them as ChatKit errors."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        cause: Any = error
        return not (isinstance(cause, Exception) and as_app_error(cause) is not None)


def _adopt_chatkit_logger() -> None:
    """Send the library's log records through ours (JSON lines in production): with LOG_LEVEL
    set, `chatkit.logger` adds a plain-text handler of its own, which printed each record
    twice and broke one-JSON-object-per-line. Refusals are not logged as errors."""
    chatkit_logger = logging.getLogger("chatkit")
    for handler in list(chatkit_logger.handlers):
        chatkit_logger.removeHandler(handler)
    chatkit_logger.propagate = True
    if not any(isinstance(f, _ExpectedRefusals) for f in chatkit_logger.filters):
        chatkit_logger.addFilter(_ExpectedRefusals())
