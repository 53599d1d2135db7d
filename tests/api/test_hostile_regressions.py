"""Regressions found by hostile testing: each reproduces a fault that wedged or lost data.

F1: a lease that lapses under a running turn must not deadlock the thread (and then the pool).
F3: memory that falls behind the log is found and repaired before a turn runs.
F5: resuming a finished turn ends instead of sending pings forever.
"""

from __future__ import annotations

import asyncio
import shutil
import uuid

import sqlalchemy as sa
from agents.testing import ModelStep, ScriptedModel, assistant_message

from app.models import Thread
from tests.conftest import RunningApp, start_app
from tests.factories import create_thread
from tests.gates import Gate
from tests.sse import iter_events, reply_text, send

# Nothing here may take longer: a wedged request fails the test instead of hanging it.
ANSWER_WITHIN_SECONDS = 10.0


async def _lapse_lease(running: RunningApp, thread_id: str) -> None:
    """What an outage longer than the lease leaves behind: a turn whose lease has expired."""
    async with running.sessionmaker() as db:
        await db.exec(
            sa.update(Thread)
            .where(Thread.id == uuid.UUID(thread_id))
            .values(active_turn_expires_at=sa.func.now() - sa.text("interval '1 second'"))
        )
        await db.commit()


class TestLapsedLeaseUnderARunningTurn:
    async def test_sends_to_the_thread_answer_and_nothing_else_notices(
        self, settings, alice, bob
    ) -> None:
        gate = Gate("the long reply")
        model = ScriptedModel([gate.step(), ModelStep(output=[assistant_message("next reply")])])
        async with start_app(settings, model=model) as running, running.client() as client:
            thread_id = await create_thread(client, alice)
            first = asyncio.create_task(send(client, thread_id, "a long question", alice))
            await gate.entered.wait()
            await _lapse_lease(running, thread_id)
            async with asyncio.timeout(ANSWER_WITHIN_SECONDS):
                sends = await asyncio.gather(
                    *(
                        client.post(
                            f"/api/threads/{thread_id}/messages",
                            json={"text": f"again {n}"},
                            headers=alice,
                        )
                        for n in range(3)
                    )
                )
                others = await client.get("/api/threads", headers=bob)
            assert [r.status_code for r in sends] == [409, 409, 409]
            assert {r.json()["error"] for r in sends} == {"ConflictError"}
            assert others.status_code == 200
            gate.opened.set()
            async with asyncio.timeout(ANSWER_WITHIN_SECONDS):
                assert reply_text(await first) == "the long reply"
                assert reply_text(await send(client, thread_id, "after", alice)) == "next reply"
            messages = await client.get(f"/api/threads/{thread_id}/messages", headers=alice)
            assert [(m["role"], m["content"]) for m in messages.json()["data"]] == [
                ("user", "a long question"),
                ("assistant", "the long reply"),
                ("user", "after"),
                ("assistant", "next reply"),
            ]


class TestResumeAfterTheEnd:
    async def test_resume_at_or_past_the_last_event_closes_at_once(self, client, alice) -> None:
        thread_id = await create_thread(client, alice)
        events = await send(client, thread_id, "list tasks", alice)
        turn_id = events[0].data["metadata"]["turn_id"]
        last = int(events[-1].id)
        url = f"/api/threads/{thread_id}/turns/{turn_id}/events"
        async with asyncio.timeout(ANSWER_WITHIN_SECONDS):
            for after, expected in ((last, []), (last + 50, []), (last - 2, events[-2:])):
                async with client.stream(
                    "GET", url, headers={**alice, "Last-Event-ID": str(after)}
                ) as response:
                    assert response.status_code == 200
                    replayed = [e async for e in iter_events(response)]
                assert [(e.id, e.event, e.data) for e in replayed] == [
                    (e.id, e.event, e.data) for e in expected
                ]


class TestMemoryBehindTheLog:
    async def test_an_older_memory_file_is_rebuilt_before_the_next_turn(
        self, running, client, alice
    ) -> None:
        thread_id = await create_thread(client, alice)
        await send(client, thread_id, "remember that A is 1", alice)
        await send(client, thread_id, "remember that B is 2", alice)
        path = running.memory_store.path_for(await running.user_id(alice), uuid.UUID(thread_id))
        backup = path.with_suffix(".backup")
        running.memory_store.close()  # checkpoint the WAL, so the copy is the whole file
        shutil.copyfile(path, backup)
        await send(client, thread_id, "remember that C is 3", alice)
        await send(client, thread_id, "remember that D is 4", alice)
        # An operator restores yesterday's copy: memory is now two turns behind the log.
        running.memory_store.close()
        for suffix in ("-wal", "-shm"):
            path.with_name(path.name + suffix).unlink(missing_ok=True)
        backup.replace(path)
        reply = reply_text(await send(client, thread_id, "what did I ask you to remember?", alice))
        assert reply == (
            "You asked me to remember: that A is 1; that B is 2; that C is 3; that D is 4."
        )
