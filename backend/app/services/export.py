"""Exports of the log a user saw: one thread (JSON or Markdown) or the whole account (JSON).

Streamed, never built whole: threads and messages are read in keyset batches, each batch in
a short transaction of its own (no connection is held while the client reads), and written
out as they come, so an account of any size costs one batch of memory. Rows created after
the export started are left out (`created_at <= exported_at`), which makes the document a
point in time even though it is read in many transactions.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import sqlalchemy as sa
from sqlmodel import col, select

from app.db import SessionMaker
from app.models import Message, Task, Thread, User
from app.models.export import (
    ExportDocument,
    ExportMessage,
    ExportTask,
    ExportThread,
    ExportToolCall,
    ExportUser,
)

THREAD_BATCH = 100
# Messages hold up to MAX_MESSAGE_CHARS (32,000) each: 200 bound a batch to a few MB.
MESSAGE_BATCH = 200
TASK_BATCH = 500


@dataclass(frozen=True)
class ExportScope:
    """Whose data, as of when, and either one thread or the whole account."""

    user_id: uuid.UUID
    subject: str
    exported_at: datetime
    thread: Thread | None = None  # None: every thread of the user

    @property
    def kind(self) -> Literal["thread", "account"]:
        return "account" if self.thread is None else "thread"


async def stream_json(sessionmaker: SessionMaker, scope: ExportScope) -> AsyncIterator[bytes]:
    """The export document (`ExportDocument`), in pieces."""
    head = ExportDocument(
        scope=scope.kind,
        exported_at=scope.exported_at,
        user=await _user(sessionmaker, scope),
        threads=[],
        tasks=[],
    ).model_dump_json()
    yield _open_list(head, "threads", "tasks")
    first = True
    async for thread in iter_threads(sessionmaker, scope):
        yield (b"" if first else b",") + _open_list(
            export_thread(thread).model_dump_json(), "messages"
        )
        first, separator = False, b""
        async for batch in iter_messages(sessionmaker, thread.id, until=scope.exported_at):
            yield separator + b",".join(export_message(m).model_dump_json().encode() for m in batch)
            separator = b","
        yield b"]}"
    yield b'],"tasks":['
    if scope.thread is None:
        first = True
        async for tasks in _iter_tasks(sessionmaker, scope):
            yield (b"" if first else b",") + b",".join(t.model_dump_json().encode() for t in tasks)
            first = False
    yield b"]}"


def _open_list(dumped: str, field: str, *after: str) -> bytes:
    """`{..., "field": []...}` (field and `after` empty lists last) cut open at `field`."""
    tail = "".join(f',"{name}":[]' for name in after)
    closed = f'"{field}":[]{tail}}}'
    if not dumped.endswith(closed):
        raise ValueError(f"expected {closed!r} at the end of the export's head")
    return (dumped[: -len(closed)] + f'"{field}":[').encode()


async def _user(sessionmaker: SessionMaker, scope: ExportScope) -> ExportUser:
    async with sessionmaker() as db:
        created = (await db.exec(select(User.created_at).where(User.id == scope.user_id))).first()
    return ExportUser(subject=scope.subject, created_at=created)


async def iter_threads(sessionmaker: SessionMaker, scope: ExportScope) -> AsyncIterator[Thread]:
    """The scope's thread, or every thread of the user by creation (keyset batches)."""
    if scope.thread is not None:
        yield scope.thread
        return
    key = sa.tuple_(col(Thread.created_at), col(Thread.id))
    after: tuple[datetime, uuid.UUID] | None = None
    while True:
        query = select(Thread).where(
            col(Thread.user_id) == scope.user_id, col(Thread.created_at) <= scope.exported_at
        )
        if after is not None:
            query = query.where(key > sa.tuple_(*after))
        async with sessionmaker() as db:
            rows = list((await db.exec(query.order_by(*key).limit(THREAD_BATCH))).all())
        for thread in rows:
            yield thread
        if len(rows) < THREAD_BATCH:
            return
        after = (rows[-1].created_at, rows[-1].id)


async def iter_messages(
    sessionmaker: SessionMaker, thread_id: uuid.UUID, *, until: datetime
) -> AsyncIterator[list[Message]]:
    """A thread's messages up to `until`, oldest first, in batches of MESSAGE_BATCH."""
    key = sa.tuple_(col(Message.created_at), col(Message.id))
    after: tuple[datetime, uuid.UUID] | None = None
    while True:
        query = select(Message).where(
            col(Message.thread_id) == thread_id, col(Message.created_at) <= until
        )
        if after is not None:
            query = query.where(key > sa.tuple_(*after))
        async with sessionmaker() as db:
            rows = list((await db.exec(query.order_by(*key).limit(MESSAGE_BATCH))).all())
        if rows:
            yield rows
        if len(rows) < MESSAGE_BATCH:
            return
        after = (rows[-1].created_at, rows[-1].id)


async def _iter_tasks(
    sessionmaker: SessionMaker, scope: ExportScope
) -> AsyncIterator[list[ExportTask]]:
    key = sa.tuple_(col(Task.created_at), col(Task.id))
    after: tuple[datetime, uuid.UUID] | None = None
    while True:
        query = select(Task).where(col(Task.user_id) == scope.user_id)
        if after is not None:
            query = query.where(key > sa.tuple_(*after))
        async with sessionmaker() as db:
            rows = list((await db.exec(query.order_by(*key).limit(TASK_BATCH))).all())
        if rows:
            yield [ExportTask.model_validate(row, from_attributes=True) for row in rows]
        if len(rows) < TASK_BATCH:
            return
        after = (rows[-1].created_at, rows[-1].id)


def export_thread(thread: Thread) -> ExportThread:
    return ExportThread(
        id=thread.id,
        title=thread.title,
        created_at=thread.created_at,
        updated_at=thread.updated_at,
        last_activity_at=thread.last_activity_at,
        message_count=thread.message_count,
        messages=[],
    )


def export_message(message: Message) -> ExportMessage:
    """The message as the API serves it, its tool calls lifted out of the metadata."""
    meta = dict(message.meta or {})
    calls = meta.pop("tool_calls", None)
    return ExportMessage(
        id=message.id,
        role=message.role,
        content=message.content,
        created_at=message.created_at,
        tool_calls=[_tool_call(c) for c in calls if isinstance(c, dict)]
        if isinstance(calls, list)
        else [],
        metadata=meta,
    )


def _tool_call(raw: dict[str, Any]) -> ExportToolCall:
    output = raw.get("output")
    return ExportToolCall(
        call_id=str(raw.get("call_id", "")),
        name=str(raw.get("name", "")),
        arguments=str(raw.get("arguments", "")),
        output=None if output is None else str(output),
    )
