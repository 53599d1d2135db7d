"""Recovery: unusable memory files are quarantined and rebuilt within the user's request;
a locked file is a clean 503; a crashed turn is reconciled to the log."""

from __future__ import annotations

import sqlite3
import uuid
from datetime import timedelta

import pytest
import sqlalchemy as sa

from app.metrics import RECOVERIES
from app.models import Message, Thread
from app.models.base import utc_now
from app.scheduler import jobs
from tests.factories import thread_row, thread_with_turns
from tests.sse import reply_text, send


@pytest.fixture
def settings_factory(settings_factory, private_database):
    """Jobs look at every thread: a database of this test's own keeps the counts exact."""

    def _make(**overrides):
        return settings_factory(**{"DATABASE_URL": private_database, **overrides})

    return _make


def overwrite(path) -> None:
    path.write_bytes(b"this is not a database " * 500)


def truncate(path) -> None:
    # Fold the WAL in first, so the truncation really cuts the database's pages.
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def non_json_row(path) -> None:
    with sqlite3.connect(path) as conn:
        session_id = conn.execute("SELECT session_id FROM agent_sessions").fetchone()[0]
        conn.execute(
            "INSERT INTO agent_messages (session_id, message_data) VALUES (?, ?)",
            (session_id, "{not json"),
        )


def recovered(reason: str) -> float:
    return RECOVERIES.labels(reason)._value.get()


class TestUnusableMemoryFile:
    @pytest.mark.parametrize(
        "damage", [overwrite, truncate, non_json_row], ids=["garbage", "truncated", "non-json-row"]
    )
    async def test_is_quarantined_and_rebuilt_in_the_same_request(
        self, client, alice, running, damage
    ) -> None:
        thread_id = await thread_with_turns(
            client, alice, "remember that the vault code is 9931", "add task " + "pad " * 300
        )
        me = await running.user_id(alice)
        path = running.memory_store.path_for(me, uuid.UUID(thread_id))
        # Damage at rest (as after a restart): no pooled connection holds the file or its WAL.
        running.memory_store.close()
        damage(path)
        before = recovered("corrupt")

        events = await send(client, thread_id, "what did I ask you to remember?", alice)

        assert "the vault code is 9931" in reply_text(events)
        quarantined = list(
            (running.memory_store.root / "_quarantine" / str(me)).glob(f"{thread_id}-*.db")
        )
        assert len(quarantined) == 1
        assert recovered("corrupt") == before + 1
        async with running.memory_store.open(me, uuid.UUID(thread_id)) as memory:
            items = await memory.get_items()
        assert items[0] == {"role": "user", "content": "remember that the vault code is 9931"}

    async def test_missing_file_is_rebuilt_from_the_log(self, client, alice, running) -> None:
        thread_id = await thread_with_turns(client, alice, "remember that the file will vanish")
        me = await running.user_id(alice)
        running.memory_store.path_for(me, uuid.UUID(thread_id)).unlink()
        before = recovered("missing")
        events = await send(client, thread_id, "what did I ask you to remember?", alice)
        assert "the file will vanish" in reply_text(events)
        assert recovered("missing") == before + 1


class TestLockedFile:
    @pytest.fixture
    def settings(self, settings_factory):
        return settings_factory(AGENT_SESSION_BUSY_TIMEOUT_MS=200)

    async def test_long_foreign_write_is_503_with_retry_after_and_nothing_saved(
        self, client, alice, running
    ) -> None:
        thread_id = await thread_with_turns(client, alice, "remember that locks happen")
        path = running.memory_store.path_for(await running.user_id(alice), uuid.UUID(thread_id))
        holder = sqlite3.connect(path, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        try:
            response = await client.post(
                f"/api/threads/{thread_id}/messages", json={"text": "hello?"}, headers=alice
            )
            assert response.status_code == 503
            assert response.headers["retry-after"] == "5"
            assert response.json()["error"] == "MemoryBusyError"
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        log = (await client.get(f"/api/threads/{thread_id}/messages", headers=alice)).json()["data"]
        assert [m["content"] for m in log] == [
            "remember that locks happen",
            "Got it — I'll remember that locks happen.",
        ]
        assert (await thread_row(running.sessionmaker, thread_id)).active_turn_id is None
        assert "locks happen" in reply_text(
            await send(client, thread_id, "what did I ask you to remember?", alice)
        )


async def simulate_crash_mid_turn(running, headers, thread_id: str, text: str) -> None:
    """What kill -9 leaves: the user message committed, memory holding a half turn, a lease."""
    me = await running.user_id(headers)
    async with running.sessionmaker() as db:
        thread = await db.get_one(Thread, uuid.UUID(thread_id))
        db.add(Message(thread_id=thread.id, role="user", content=text))
        thread.message_count += 1  # as the real insert does, in the same transaction
        thread.active_turn_id = uuid.uuid4()
        thread.active_turn_expires_at = utc_now() - timedelta(seconds=1)
        db.add(thread)
        await db.commit()
    async with running.memory_store.open(me, uuid.UUID(thread_id)) as memory:
        await memory.add_items(
            [
                {"role": "user", "content": text},
                {
                    "type": "function_call",
                    "call_id": "call_dead",
                    "name": "list_tasks",
                    "arguments": "{}",
                },
            ]
        )


class TestCrashedTurn:
    async def test_next_turn_reconciles_memory_to_the_log(self, client, alice, running) -> None:
        thread_id = await thread_with_turns(client, alice, "remember that crashes heal")
        await simulate_crash_mid_turn(running, alice, thread_id, "list tasks")
        events = await send(client, thread_id, "what did I say first?", alice)
        assert reply_text(events) == 'You first said: "remember that crashes heal"'
        me = await running.user_id(alice)
        async with running.memory_store.open(me, uuid.UUID(thread_id)) as memory:
            items = await memory.get_items()
        assert not any(i.get("call_id") == "call_dead" for i in items)
        users = [i["content"] for i in items if i.get("role") == "user"]
        assert users == ["remember that crashes heal", "list tasks", "what did I say first?"]

    async def test_reconcile_job_repairs_it_before_any_turn(self, client, alice, running) -> None:
        thread_id = await thread_with_turns(client, alice, "remember that jobs repair")
        await simulate_crash_mid_turn(running, alice, thread_id, "add task half")
        ctx = running.state["job_context"]
        found = await jobs.reconcile(ctx, dry_run=True)
        assert thread_id in found["diverged_ids"]
        assert found["repaired"] == 0
        result = await jobs.reconcile(ctx)
        assert thread_id in result["diverged_ids"]
        assert result["repaired"] == result["diverged"]
        assert thread_id not in (await jobs.reconcile(ctx, dry_run=True))["diverged_ids"]
        me = await running.user_id(alice)
        async with running.memory_store.open(me, uuid.UUID(thread_id)) as memory:
            tail = await memory.last_item()
        assert tail == {"role": "user", "content": "add task half"}

    async def test_expired_lease_of_a_dead_worker_does_not_block_the_thread(
        self, client, alice, running
    ) -> None:
        thread_id = await thread_with_turns(client, alice, "remember that leases expire")
        async with running.sessionmaker() as db:
            await db.exec(
                sa.update(Thread)
                .where(Thread.id == uuid.UUID(thread_id))
                .values(
                    active_turn_id=uuid.uuid4(),
                    active_turn_expires_at=utc_now() + timedelta(minutes=1),
                )
            )
            await db.commit()
        blocked = await client.post(
            f"/api/threads/{thread_id}/messages", json={"text": "x"}, headers=alice
        )
        assert blocked.status_code == 409
        async with running.sessionmaker() as db:
            await db.exec(
                sa.update(Thread)
                .where(Thread.id == uuid.UUID(thread_id))
                .values(active_turn_expires_at=utc_now() - timedelta(seconds=1))
            )
            await db.commit()
        assert "leases expire" in reply_text(
            await send(client, thread_id, "what did I ask you to remember?", alice)
        )
