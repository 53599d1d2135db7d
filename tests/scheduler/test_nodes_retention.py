"""Retention over several nodes (two apps, each with its own DATA_DIR, on one PostgreSQL):
which threads expired is decided once; each node removes its own files of those threads and
its own copies another node has superseded, and never rebuilds a thread served elsewhere."""

from __future__ import annotations

import uuid

from app.scheduler.registry import run_job
from tests.conftest import node_settings, start_app
from tests.factories import age_thread, create_thread, thread_row
from tests.sse import reply_text, send


def has_file(running, user_id: uuid.UUID, thread_id: str) -> bool:
    return running.memory_store.path_for(user_id, uuid.UUID(thread_id)).exists()


class TestRetentionOverNodes:
    async def test_each_node_removes_its_own_expired_and_superseded_files(
        self, settings_factory, tmp_path, alice
    ) -> None:
        a_settings = node_settings(settings_factory, tmp_path, "a")
        b_settings = node_settings(settings_factory, tmp_path, "b")
        async with (
            start_app(a_settings) as a,
            start_app(b_settings) as b,
            a.client() as on_a,
            b.client() as on_b,
        ):
            user_id = await a.user_id(alice)
            moved = await create_thread(on_a, alice)  # served on A, then on B
            await send(on_a, moved, "remember that the door code is 1234", alice)
            await send(on_b, moved, "remember that the wifi is open", alice)
            idle = await create_thread(on_b, alice)  # served on B, then A; then idle
            await send(on_b, idle, "add task old errand", alice)
            await send(on_a, idle, "list tasks", alice)
            await age_thread(a.sessionmaker, idle, days=30)
            assert (await thread_row(a.sessionmaker, moved)).memory_node == "node-b"
            assert (await thread_row(a.sessionmaker, idle)).memory_node == "node-a"
            assert all(has_file(n, user_id, t) for n in (a, b) for t in (moved, idle))

            cleanup = await run_job("cleanup", a.state["job_context"], trigger="test")
            assert (cleanup.status, cleanup.counts["deleted"], cleanup.node) == (
                "succeeded",
                1,
                "node-a",
            )
            sweeps = {
                name: await run_job("sweep-orphans", n.state["job_context"], trigger="test")
                for name, n in (("a", a), ("b", b))
            }
            # One lock per node: neither sweep skips the other's.
            assert {k: (r.status, r.counts["stale_removed"]) for k, r in sweeps.items()} == {
                "a": ("succeeded", 1),  # its copy of `moved`, superseded by B
                "b": ("succeeded", 1),  # its copy of `idle`, expired
            }
            assert sweeps["a"].counts["rows_without_file"] == 0  # `moved` lives on B
            assert [has_file(a, user_id, moved), has_file(a, user_id, idle)] == [False, False]
            assert [has_file(b, user_id, moved), has_file(b, user_id, idle)] == [True, False]

            # A node that lost (or never had) the file rebuilds it from the log before a turn.
            reply = reply_text(await send(on_a, moved, "what did I ask you to remember?", alice))
            assert reply == (
                "You asked me to remember: that the door code is 1234; that the wifi is open."
            )
            assert (await thread_row(a.sessionmaker, moved)).memory_node == "node-a"

    async def test_a_new_node_does_not_rebuild_threads_served_elsewhere(
        self, settings_factory, tmp_path, alice
    ) -> None:
        a_settings = node_settings(settings_factory, tmp_path, "a")
        c_settings = node_settings(settings_factory, tmp_path, "c")
        async with start_app(a_settings) as a, a.client() as on_a:
            thread_id = await create_thread(on_a, alice)
            await send(on_a, thread_id, "add task stay put", alice)
            before = await thread_row(a.sessionmaker, thread_id)
            async with start_app(c_settings) as c:
                run = await run_job("reconcile", c.state["job_context"], trigger="startup")
                verify = await run_job("sweep-orphans", c.state["job_context"], trigger="test")
                assert run.counts["checked"] == 0
                assert verify.counts["rows_without_file"] == 0
                assert not has_file(c, await a.user_id(alice), thread_id)
            after = await thread_row(a.sessionmaker, thread_id)
            assert after.memory_generation == before.memory_generation
