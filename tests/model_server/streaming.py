"""A response body that can pause, hang or drop the connection, as an ASGI app.

Renderers describe a response as frames: bytes to send, pauses between them (async sleeps, so
one process holds thousands of slow streams), a hang, or a drop. Starlette's StreamingResponse
cannot drop a connection on purpose, and on uvicorn's ASGI 2.3 it learns of a client
disconnect only by racing a reader task; here a hang waits on the release gate *or* the
client's disconnect, whichever comes first.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from starlette.types import Receive, Scope, Send

from tests.model_server.state import HangGate
from tests.model_server.steps import Drop, EndsEarly, Hang, Malformed, Step


class DropConnection(Exception):
    """Raised inside a response so uvicorn closes the socket without finishing the body."""


@dataclass(frozen=True)
class Pause:
    seconds: float


class HangFrame:
    """Stop sending until the gate is released or the client leaves, then drop."""


class DropFrame:
    """Close the connection now."""


HANG = HangFrame()
DROP = DropFrame()
Frame = bytes | Pause | HangFrame | DropFrame


class _HideDrops(logging.Filter):
    """uvicorn logs any exception from the app; a scripted drop is not one worth showing."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], DropConnection))


def hide_drop_logs() -> None:
    """Install the filter on uvicorn's error logger once."""
    logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(existing, _HideDrops) for existing in logger.filters):
        logger.addFilter(_HideDrops())


class FrameResponse:
    """An ASGI response whose body is a sequence of frames."""

    def __init__(
        self,
        frames: Iterable[Frame],
        hangs: HangGate,
        *,
        status: int = 200,
        headers: Mapping[str, str] | None = None,
        media_type: str = "text/event-stream",
        content_length: int | None = None,
    ) -> None:
        self.frames = frames
        self.hangs = hangs
        self.status = status
        self.headers = {"content-type": media_type, "cache-control": "no-cache"}
        if content_length is not None:
            self.headers["content-length"] = str(content_length)
        self.headers.update(headers or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Send the frames; stop early (no more sleeping) when the client disconnects."""
        body = asyncio.ensure_future(self._send_body(send))
        watcher = asyncio.ensure_future(_disconnected(receive))
        try:
            await asyncio.wait({body, watcher}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (watcher, body):
                if not task.done():
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
        if body.done() and not body.cancelled():
            body.result()  # re-raises DropConnection, which makes uvicorn drop the socket

    async def _send_body(self, send: Send) -> None:
        raw = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in self.headers.items()]
        await send({"type": "http.response.start", "status": self.status, "headers": raw})
        for frame in self.frames:
            if isinstance(frame, bytes):
                await send({"type": "http.response.body", "body": frame, "more_body": True})
            elif isinstance(frame, Pause):
                await asyncio.sleep(frame.seconds)
            elif isinstance(frame, HangFrame):
                await self.hangs.wait()
                raise DropConnection("hang released")
            else:
                raise DropConnection("scripted drop")
        await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


def json_response(body: bytes, step: Step, hangs: HangGate) -> FrameResponse:
    """A non-streamed reply: the whole body, or broken the way an interrupting step says.

    Malformed and EndsEarly send half the body with a 200 (the JSON does not parse); Hang
    sends the headers and then nothing; Drop sends half the promised Content-Length and then
    closes the connection.
    """
    half = body[: len(body) // 2]
    if isinstance(step, Malformed | EndsEarly):
        return FrameResponse([half], hangs, media_type="application/json")
    frames: list[Frame] = [body]
    if isinstance(step, Hang):
        frames = [HANG]
    elif isinstance(step, Drop):
        frames = [half, DROP]
    return FrameResponse(frames, hangs, media_type="application/json", content_length=len(body))
