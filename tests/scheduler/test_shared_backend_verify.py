"""`verify` and `reconcile` on a node with the shared `postgres` memory backend look only at
threads whose memory is in PostgreSQL. A thread last saved in a node's SQLite files (before a
backend switch, or by a node still on sqlite) has no memory there to compare: it is rebuilt
from the log on its next turn. Counting it as missing failed `sessions verify` in the nodes
drill whenever the sqlite scene's threads shared the database, while a real mismatch in
PostgreSQL must still be reported."""

from __future__ import annotations

import uuid

from app.scheduler.jobs import reconcile, verify
from tests.conftest import node_settings, start_app
from tests.factories import create_thread, memory_items, thread_row
from tests.sse import send


class TestVerifyOnTheSharedBackend:
    async def test_threads_held_in_sqlite_files_are_not_missing_but_a_real_mismatch_is(
        self, settings_factory, tmp_path, alice
    ) -> None:
        # No startup reconcile (as in the drill): what verify sees is what the turns left.
        on_files = node_settings(settings_factory, tmp_path, "a", SCHEDULER_ENABLED=False)
        shared = node_settings(
            settings_factory,
            tmp_path,
            "p",
            AGENT_MEMORY_BACKEND="postgres",
            SCHEDULER_ENABLED=False,
        )
        async with start_app(on_files) as a, a.client() as on_a:
            in_files = await create_thread(on_a, alice)
            await send(on_a, in_files, "remember that the door code is 1234", alice)
        async with start_app(shared) as p, p.client() as on_p:
            in_postgres = await create_thread(on_p, alice)
            await send(on_p, in_postgres, "add task water the plants", alice)
            ctx = p.state["job_context"]
            before = await thread_row(p.sessionmaker, in_files)
            assert before.memory_node == "node-a"

            report = await verify(ctx)
            assert report["ok"] is True, report
            assert (report["memory"]["checked"], report["memory"]["diverged"]) == (1, 0)

            # What a turn cut off after its save would leave: an item after the stamp.
            user_id = await p.user_id(alice)
            async with p.memory_store.open(user_id, uuid.UUID(in_postgres)) as memory:
                await memory.add_items([{"role": "assistant", "content": "half a reply"}])
            report = await verify(ctx)
            assert report["ok"] is False
            assert report["memory"]["reasons"] == {"interrupted turn": 1}
            assert report["memory"]["diverged_ids"] == [in_postgres]

            # The startup reconcile repairs that one and leaves the file-held thread alone.
            repaired = await reconcile(ctx)
            assert (repaired["checked"], repaired["repaired"]) == (1, 1)
            after = await thread_row(p.sessionmaker, in_files)
            assert (after.memory_node, after.memory_generation) == (
                "node-a",
                before.memory_generation,
            )
            assert await memory_items(p, alice, in_files) == []

            # Its next turn here rebuilds it from the log; from then on it is checked here.
            await send(on_p, in_files, "what did I ask you to remember?", alice)
            assert (await thread_row(p.sessionmaker, in_files)).memory_node is None
            report = await verify(ctx)
            assert report["ok"] is True, report
            assert report["memory"]["checked"] == 2
