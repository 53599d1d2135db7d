"""A turn waiting on its model holds the thread, but no database connection and no file.

One worker keeps hundreds of turns in flight, each waiting seconds on its model: if each kept
a PostgreSQL connection, the pool would run dry at its size; if each kept its memory file
open, descriptors would grow with the turns. The memory *lock* stays with the turn for its
whole run; the connection and the descriptor go back between its reads and writes.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from app.memory import off_loop
from tests.conftest import start_app
from tests.factories import create_thread, memory_items
from tests.gates import StallingModel
from tests.sse import send

# Tasks of the worker itself (not of any turn) that use the database on their own schedule.
SERVICE_TASKS = frozenset({"lease-keeper", "turn-event-writer", "turn-event-feed"})


@contextmanager
def connection_owners(engine: AsyncEngine) -> Iterator[dict[int, str]]:
    """Which task checked out each PostgreSQL connection that is out of the pool now
    (key -1: how many checkouts there were in all)."""
    owners: dict[int, str] = {}
    checkouts = 0

    def checkout(_dbapi: Any, record: Any, _proxy: Any) -> None:
        nonlocal checkouts
        checkouts += 1
        task = asyncio.current_task()
        owners[id(record)] = task.get_name() if task is not None else "?"
        owners[-1] = str(checkouts)

    def checkin(_dbapi: Any, record: Any) -> None:
        owners.pop(id(record), None)

    pool = engine.sync_engine.pool
    sa.event.listen(pool, "checkout", checkout)
    sa.event.listen(pool, "checkin", checkin)
    try:
        yield owners
    finally:
        sa.event.remove(pool, "checkout", checkout)
        sa.event.remove(pool, "checkin", checkin)


def open_descriptors_of(path: Path) -> list[str]:
    """This process's descriptors on a memory file or its sidecars."""
    names = {str(path), f"{path}-wal", f"{path}-shm", f"{path}-journal"}
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue  # closed since the listing
        if target in names:
            found.append(target)
    return found


class TestParkedTurn:
    async def test_a_turn_waiting_on_its_model_holds_no_connection_and_no_descriptor(
        self, settings, alice
    ) -> None:
        model = StallingModel(deltas=3)
        async with start_app(settings, model=model) as running, running.client() as client:
            thread_id = await create_thread(client, alice)
            engine: AsyncEngine = running.state["engine"]
            with connection_owners(engine) as owners:
                sending = asyncio.create_task(send(client, thread_id, "help", alice))
                await model.streamed.wait()  # parked on its model, mid-reply
                ((turn_id, (turn, _task)),) = running.turn_runner._running.items()
                checked_out = {k: v for k, v in owners.items() if k != -1}
                assert int(owners[-1]) > 0  # the turn's opening used the pool, and gave back
                assert set(checked_out.values()) <= SERVICE_TASKS
                store = running.memory_store
                path = store.path_for(await running.user_id(alice), uuid.UUID(thread_id))
                # The pool keeps the file open, idle (database, WAL, shared memory); closing
                # the idle connections leaves none, so the turn itself holds no descriptor.
                assert len(open_descriptors_of(path)) == 3
                await off_loop(store.close)
                assert open_descriptors_of(path) == []
                stop = await client.post(
                    f"/api/threads/{thread_id}/turns/{turn_id}/cancel", headers=alice
                )
                assert stop.status_code == 202
                events = await sending
            assert events[-1].data == {"turn_id": str(turn_id), "status": "cancelled"}
            streamed = "".join(e.data["delta"] for e in events if e.event == "text_delta")
            # The lock stayed with the turn: what it kept was written through a fresh open.
            assert await memory_items(running, alice, thread_id) == [
                {"role": "user", "content": "help"},
                {"role": "assistant", "content": streamed},
            ]
            assert turn.thread_id == uuid.UUID(thread_id)
