"""DELETE /api/me and DELETE /api/admin/users/{subject}: erasure leaves nothing that names the
user, refuses (changing nothing) while a reply runs, and a token afterwards starts afresh.

Each test has a database of its own: the proof that nothing remains looks at every row of
every table, and the maintenance job it runs looks at every thread.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa
from agents.testing import ModelStep, ScriptedModel, assistant_message

from app.scheduler.registry import run_job
from app.services import erasure
from app.services.users import UserIdCache
from tests.conftest import start_app
from tests.factories import create_thread, logged, thread_with_turns
from tests.gates import Gate
from tests.sse import reply_text, send


@pytest.fixture
def settings(private_settings):
    return private_settings


def subject_of(tokens, headers) -> str:
    return tokens.verify(headers["Authorization"].split()[1]).subject


async def rows_naming(sessionmaker, ids: list[uuid.UUID]) -> dict[str, int]:
    """Rows of any table whose text form holds one of the ids, per table (none: empty)."""
    found = {}
    async with sessionmaker() as db:
        tables = (
            await db.exec(sa.text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'"))
        ).scalars()
        for table in list(tables):
            count = (
                await db.exec(
                    sa.text(f'SELECT count(*) FROM "{table}" x WHERE x::text LIKE ANY(:p)'),
                    params={"p": [f"%{i}%" for i in ids]},
                )
            ).scalar_one()
            if count:
                found[table] = count
    return found


def files_naming(root: Path, ids: list[uuid.UUID]) -> list[str]:
    """Paths under `root` whose name or content holds one of the ids."""
    names = [str(i) for i in ids]
    hits = []
    for path in root.rglob("*"):
        if (
            any(n in str(path) for n in names)
            or path.is_file()
            and any(n.encode() in path.read_bytes() for n in names)
        ):
            hits.append(str(path))
    return hits


class TestEraseMe:
    async def test_nothing_remains_that_names_the_user(
        self, client, alice, bob, running, settings, tokens
    ) -> None:
        store, ctx = running.memory_store, running.state["job_context"]
        me = await running.user_id(alice)
        first = await thread_with_turns(client, alice, "add task buy milk", "remember that x")
        second = await thread_with_turns(client, alice, "hello")
        await client.post("/api/tasks", json={"title": "water plants"}, headers=alice)
        theirs = await thread_with_turns(client, bob, "add task bob's own")
        bob_id = await running.user_id(bob)
        # A quarantined copy (as corruption recovery leaves one); the next turn rebuilds.
        async with store.open(me, uuid.UUID(first)) as memory:
            assert await store.quarantine(memory) is not None
        await send(client, first, "what did I say first?", alice)
        # Maintenance bookkeeping that names threads of both users: files gone missing.
        for owner, thread_id in ((me, second), (bob_id, theirs)):
            store.path_for(owner, uuid.UUID(thread_id)).unlink()
        swept = await run_job("sweep-orphans", ctx)
        assert sorted(swept.counts["missing_ids"]) == sorted([second, theirs])
        await send(client, second, "hello again", alice)  # rebuilds its memory file

        response = await client.delete("/api/me", headers=alice)

        assert response.status_code == 200, response.text
        assert response.json() == {
            "subject": subject_of(tokens, alice),
            "user_id": str(me),
            "threads": 2,
            "messages": 10,
            "tasks": 2,
            "memory_files": 2,
            "quarantined_files": 1,
            "maintenance_runs_scrubbed": 1,
        }
        ids = [me, uuid.UUID(first), uuid.UUID(second)]
        assert await rows_naming(running.sessionmaker, ids) == {}
        assert files_naming(settings.DATA_DIR, ids) == []
        # Bob keeps everything, his entry in the bookkeeping included.
        assert await logged(client, bob, theirs) == [
            ("user", "add task bob's own"),
            ("assistant", 'Added "bob\'s own" to your tasks.'),
        ]
        kept = await rows_naming(running.sessionmaker, [uuid.UUID(theirs)])
        # The turn's events, kept for resuming streams until they expire: written in batches
        # as the turn runs, so how many rows depends on timing (at least one).
        assert kept.pop("turn_events") > 0
        assert kept == {"threads": 1, "messages": 2, "turns": 1, "maintenance_runs": 1}

    async def test_a_token_for_an_erased_user_starts_a_fresh_account(
        self, client, alice, running
    ) -> None:
        before = await running.user_id(alice)
        await thread_with_turns(client, alice, "add task old")
        assert (await client.delete("/api/me", headers=alice)).status_code == 200
        assert (await client.get("/api/threads", headers=alice)).json()["data"] == []
        assert (await client.get("/api/tasks", headers=alice)).json()["data"] == []
        fresh = await create_thread(client, alice, "new start")
        after = await running.user_id(alice)
        assert after != before
        listed = (await client.get("/api/threads", headers=alice)).json()["data"]
        assert [t["id"] for t in listed] == [fresh]

    async def test_a_second_erasure_finds_an_empty_account(self, client, alice) -> None:
        assert (await client.delete("/api/me", headers=alice)).status_code == 200
        again = await client.delete("/api/me", headers=alice)
        assert again.status_code == 200
        body = again.json()
        assert (body["threads"], body["messages"], body["tasks"], body["memory_files"]) == (
            0,
            0,
            0,
            0,
        )


class TestEraseWhileReplying:
    async def test_a_running_turn_refuses_and_nothing_changes(self, settings, alice) -> None:
        gate = Gate("slow reply")
        model = ScriptedModel(
            [
                ModelStep(output=[assistant_message("idle reply")]),
                gate.step(),
                ModelStep(output=[assistant_message("still works")]),
                ModelStep(output=[assistant_message("last words")]),
            ]
        )
        async with start_app(settings, model=model) as running, running.client() as client:
            idle = await create_thread(client, alice)
            await send(client, idle, "one", alice)
            busy = await create_thread(client, alice)
            held = asyncio.create_task(send(client, busy, "hold", alice))
            await gate.entered.wait()

            refused = await client.delete("/api/me", headers=alice)

            assert refused.status_code == 409
            assert refused.headers["retry-after"] == str(erasure.RETRY_AFTER_SECONDS)
            assert refused.json() == {
                "error": "ConflictError",
                "detail": f"A reply is being generated in thread {busy}; nothing was "
                "erased. Try again when it ends",
            }
            # Every lease was given back: the idle thread takes a turn at once.
            assert reply_text(await send(client, idle, "two", alice)) == "still works"
            me = await running.user_id(alice)
            assert await running.memory_store.exists(me, uuid.UUID(idle))
            gate.opened.set()
            assert reply_text(await held) == "slow reply"
            erased = await client.delete("/api/me", headers=alice)
            assert erased.status_code == 200
            assert (erased.json()["threads"], erased.json()["messages"]) == (2, 6)


class TestAdminErase:
    async def test_an_admin_erases_a_user_by_subject(
        self, client, alice, auth_for, running, tokens
    ) -> None:
        ops = auth_for("ops", admin=True)
        await thread_with_turns(client, alice, "add task a")
        subject = subject_of(tokens, alice)
        me = await running.user_id(alice)
        refused = await client.delete(f"/api/admin/users/{subject}", headers=alice)
        assert refused.status_code == 403
        response = await client.delete(f"/api/admin/users/{subject}", headers=ops)
        assert response.status_code == 200
        assert (response.json()["user_id"], response.json()["threads"]) == (str(me), 1)
        assert await rows_naming(running.sessionmaker, [me]) == {}

    async def test_an_unknown_subject_is_404_and_creates_nobody(
        self, client, auth_for, running
    ) -> None:
        ops = auth_for("ops", admin=True)
        response = await client.delete("/api/admin/users/nobody-here", headers=ops)
        assert response.status_code == 404
        assert response.json() == {
            "error": "NotFoundError",
            "detail": "No user with subject 'nobody-here'",
        }
        async with running.sessionmaker() as db:
            found = await db.exec(
                sa.text("SELECT count(*) FROM users WHERE subject = 'nobody-here'")
            )
            assert found.scalar_one() == 0


class TestStaleUserIds:
    async def test_another_worker_with_the_id_cached_answers_409_then_starts_afresh(
        self, settings, alice
    ) -> None:
        async with (
            start_app(settings) as worker_a,
            start_app(settings) as worker_b,
            worker_a.client() as client_a,
            worker_b.client() as client_b,
        ):
            await create_thread(client_a, alice, "old")
            assert len((await client_b.get("/api/threads", headers=alice)).json()["data"]) == 1
            assert (await client_a.delete("/api/me", headers=alice)).status_code == 200
            # Worker B still has the erased id cached: reads find nothing, a write is refused.
            assert (await client_b.get("/api/threads", headers=alice)).json()["data"] == []
            refused = await client_b.post("/api/threads", json={}, headers=alice)
            assert refused.status_code == 409
            assert refused.json() == {
                "error": "AccountGoneError",
                "detail": "Your account was erased while this request ran; send it again "
                "to start afresh",
            }
            fresh = await create_thread(client_b, alice, "new")
            for client in (client_a, client_b):
                listed = (await client.get("/api/threads", headers=alice)).json()["data"]
                assert [t["id"] for t in listed] == [fresh]

    async def test_the_cache_trusts_an_entry_for_its_ttl_only(self, running) -> None:
        now = [0.0]
        cache = UserIdCache(ttl_s=30, clock=lambda: now[0])
        subject = f"ttl-{uuid.uuid4().hex}"
        async with running.sessionmaker() as db:
            created = await cache.resolve(db, subject)
            await db.commit()
            assert await cache.resolve(db, subject) == created  # read back: now cached
            await db.exec(sa.text("DELETE FROM users WHERE id = :i"), params={"i": created})
            await db.commit()
            now[0] = 29.9
            assert await cache.resolve(db, subject) == created  # trusted: no lookup
            now[0] = 30.1
            fresh = await cache.resolve(db, subject)
            assert fresh != created
            await db.commit()
            cache.forget_id(fresh)
            await db.exec(sa.text("DELETE FROM users WHERE id = :i"), params={"i": fresh})
            await db.commit()
            assert await cache.resolve(db, subject) not in (created, fresh)
