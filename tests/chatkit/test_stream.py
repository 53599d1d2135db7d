"""The endpoint's stream: keep-alive pings while ChatKit is quiet, and refusals as events."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator

import pytest
from chatkit.server import StreamingResult

from app.chatkit import router
from app.chatkit.context import ChatKitContext
from app.errors import ConflictError


def context() -> ChatKitContext:
    return ChatKitContext(
        user_id=None,  # type: ignore[arg-type]  # nothing here reaches the services
        settings=None,  # type: ignore[arg-type]
        sessionmaker=None,  # type: ignore[arg-type]
        runner=None,  # type: ignore[arg-type]
        memory_store=None,  # type: ignore[arg-type]
        agents=None,  # type: ignore[arg-type]
    )


class TestStream:
    async def test_a_quiet_stream_gets_pings_then_its_frames(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(router, "KEEPALIVE_SECONDS", 0.01)
        release = asyncio.Event()

        async def frames() -> AsyncGenerator[bytes, None]:
            await release.wait()
            yield b'data: {"type":"thread.item.done"}\n\n'

        stream = router._stream(StreamingResult(frames()), context())
        assert await anext(stream) == b": ping\n\n"
        release.set()
        received = [frame async for frame in stream if frame != b": ping\n\n"]
        assert received == [b'data: {"type":"thread.item.done"}\n\n']

    async def test_a_refusal_inside_the_stream_is_a_chatkit_error_event(self) -> None:
        async def frames() -> AsyncGenerator[bytes, None]:
            raise ConflictError("busy")
            yield b""  # an async generator

        received = [f async for f in router._stream(StreamingResult(frames()), context())]
        assert received == [
            b'data: {"type":"error","code":"custom","message":"busy","allow_retry":true}\n\n'
        ]

    async def test_the_database_out_of_reach_is_a_retryable_chatkit_error(self) -> None:
        from sqlalchemy.exc import TimeoutError as PoolTimeoutError

        async def frames() -> AsyncGenerator[bytes, None]:
            raise PoolTimeoutError("QueuePool limit reached")
            yield b""  # an async generator

        received = [f async for f in router._stream(StreamingResult(frames()), context())]
        assert received == [
            b'data: {"type":"error","code":"custom",'
            b'"message":"The database is unavailable; retry shortly","allow_retry":true}\n\n'
        ]


class TestLogging:
    def test_the_librarys_records_go_through_the_apps_handlers_only(self) -> None:
        import logging

        from app.main import create_app

        chatkit_logger = logging.getLogger("chatkit")
        chatkit_logger.addHandler(logging.StreamHandler())  # what chatkit.logger does
        create_app()
        assert chatkit_logger.handlers == []
        assert chatkit_logger.propagate is True
