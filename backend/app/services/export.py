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

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Row
from sqlmodel import col, select

from app.db import SessionMaker
from app.models import Message, Task, Thread, User
from app.models.export import ExportDocument, ExportTask, ExportThread, ExportUser

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
    current: uuid.UUID | None = None
    separator = b""
    async for thread, batch in iter_logs(sessionmaker, scope):
        if thread.id != current:
            opened = _open_list(export_thread(thread).model_dump_json(), "messages")
            yield (b"" if current is None else b"]},") + opened
            current, separator = thread.id, b""
        if batch:
            yield separator + b",".join(message_json(row) for row in batch)
            separator = b","
    yield (b"" if current is None else b"]}") + b'],"tasks":['
    if scope.thread is None:
        separator = b""
        async for tasks in _iter_tasks(sessionmaker, scope):
            yield separator + b",".join(t.model_dump_json().encode() for t in tasks)
            separator = b","
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


async def iter_logs(
    sessionmaker: SessionMaker, scope: ExportScope
) -> AsyncIterator[tuple[Thread, list[LogRow]]]:
    """Each thread of the scope with its messages, in batches of about MESSAGE_BATCH.

    A thread's batches come one after another (a thread without messages comes once, with
    an empty batch). Small threads are read together, several in one query (their
    `message_count` says how many fit), so a thousand short threads cost a few dozen
    queries, not a thousand; a long thread is read alone, page by page.
    """
    async for threads in iter_threads(sessionmaker, scope):
        for group in _groups(threads):
            if len(group) == 1 and group[0].message_count > MESSAGE_BATCH:
                empty = True
                async for batch in iter_messages(
                    sessionmaker, group[0].id, until=scope.exported_at
                ):
                    empty = False
                    yield group[0], batch
                if empty:
                    yield group[0], []
                continue
            logs = await _messages_of(sessionmaker, group, until=scope.exported_at)
            for thread in group:
                yield thread, logs.get(thread.id, [])


def _groups(threads: list[Thread]) -> list[list[Thread]]:
    """Consecutive threads whose messages add up to at most MESSAGE_BATCH (or one thread)."""
    groups: list[list[Thread]] = []
    size = MESSAGE_BATCH + 1
    for thread in threads:
        if size + thread.message_count > MESSAGE_BATCH:
            groups.append([])
            size = 0
        groups[-1].append(thread)
        size += thread.message_count
    return groups


async def _messages_of(
    sessionmaker: SessionMaker, threads: list[Thread], *, until: datetime
) -> dict[uuid.UUID, list[LogRow]]:
    ids = [thread.id for thread in threads]
    query = (
        sa.select(*LOG_COLUMNS)
        .where(col(Message.thread_id).in_(ids), col(Message.created_at) <= until)
        .order_by(col(Message.thread_id), col(Message.created_at), col(Message.id))
    )
    async with sessionmaker() as db:
        rows = (await db.exec(query)).all()  # type: ignore[call-overload]  # sqlmodel types exec() for at most 4 columns
    logs: dict[uuid.UUID, list[LogRow]] = {}
    for row in rows:
        logs.setdefault(row.thread_id, []).append(row)
    return logs


async def iter_threads(
    sessionmaker: SessionMaker, scope: ExportScope
) -> AsyncIterator[list[Thread]]:
    """The scope's thread, or every thread of the user by creation, in keyset batches."""
    if scope.thread is not None:
        yield [scope.thread]
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
        if rows:
            yield rows
        if len(rows) < THREAD_BATCH:
            return
        after = (rows[-1].created_at, rows[-1].id)


async def iter_messages(
    sessionmaker: SessionMaker, thread_id: uuid.UUID, *, until: datetime
) -> AsyncIterator[list[LogRow]]:
    """A thread's messages up to `until`, oldest first, in batches of MESSAGE_BATCH."""
    key = sa.tuple_(col(Message.created_at), col(Message.id))
    after: tuple[datetime, uuid.UUID] | None = None
    while True:
        query = sa.select(*LOG_COLUMNS).where(
            col(Message.thread_id) == thread_id, col(Message.created_at) <= until
        )
        if after is not None:
            query = query.where(key > sa.tuple_(*after))
        async with sessionmaker() as db:
            rows = list((await db.exec(query.order_by(*key).limit(MESSAGE_BATCH))).all())  # type: ignore[call-overload]  # sqlmodel types exec() for at most 4 columns
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
        status=thread.status,
        agent=thread.agent,
        metadata=thread.meta,
        messages=[],
    )


# Messages are read as plain rows and written with orjson: an account's export makes tens of
# thousands of them, and ORM objects plus a model per message tripled the time and the
# garbage collector's pauses (W10). `message_fields` gives them the shape of ExportMessage.
LOG_COLUMNS = (
    col(Message.id),
    col(Message.thread_id),
    col(Message.role),
    col(Message.content),
    col(Message.created_at),
    col(Message.meta),
)
LogRow = Row[Any]


def message_fields(row: LogRow) -> dict[str, Any]:
    """An ExportMessage's fields: the message, its tool calls lifted out of the metadata."""
    meta = dict(row.meta or {})
    calls = meta.pop("tool_calls", None)
    return {
        "id": row.id,
        "role": row.role,
        "content": row.content,
        "created_at": row.created_at,
        "tool_calls": [_tool_call(c) for c in calls if isinstance(c, dict)]
        if isinstance(calls, list)
        else [],
        "metadata": meta,
    }


def message_json(row: LogRow) -> bytes:
    return orjson.dumps(message_fields(row), option=orjson.OPT_UTC_Z)


def _tool_call(raw: dict[str, Any]) -> dict[str, Any]:
    output = raw.get("output")
    return {
        **raw,
        "call_id": str(raw.get("call_id", "")),
        "name": str(raw.get("name", "")),
        "arguments": str(raw.get("arguments", "")),
        "output": None if output is None else str(output),
    }
