"""Node incarnations: which start of a node a process belongs to, and a restarted node
freeing at once the leases its previous start held (other nodes' leases expire by time)."""

from __future__ import annotations

import uuid
from datetime import timedelta

import sqlalchemy as sa

from app.db import session_scope
from app.models import NodeIncarnation, Thread, Turn
from app.node import join_node
from app.services import leases
from tests.conftest import start_app
from tests.factories import create_thread, thread_row
from tests.sse import reply_text, send


class TestJoinNode:
    def test_processes_of_a_live_node_share_its_incarnation(self, tmp_path) -> None:
        first = join_node(tmp_path, "n1")
        second = join_node(tmp_path, "n1")  # a worker started while the first lives
        try:
            assert first.identity.fresh
            assert not second.identity.fresh
            assert second.identity.incarnation == first.identity.incarnation
        finally:
            first.close()
        third = join_node(tmp_path, "n1")  # the second still lives: same start
        assert third.identity.incarnation == first.identity.incarnation
        second.close()
        third.close()
        restarted = join_node(tmp_path, "n1")  # every process of the node is gone
        try:
            assert restarted.identity.fresh
            assert restarted.identity.incarnation != first.identity.incarnation
        finally:
            restarted.close()

    def test_the_default_node_id_tells_two_data_dirs_on_one_host_apart(
        self, settings_factory, tmp_path
    ) -> None:
        a = settings_factory(DATA_DIR=tmp_path / "a").node_id
        b = settings_factory(DATA_DIR=tmp_path / "b").node_id
        assert a != b
        assert a == settings_factory(DATA_DIR=tmp_path / "a").node_id
        assert settings_factory(NODE_ID="web-1").node_id == "web-1"


async def hold_as_crashed_turn(sessionmaker, thread_id: str, incarnation: uuid.UUID) -> uuid.UUID:
    """What a kill -9 mid-turn leaves: a running turn holding the thread's lease."""
    row = await thread_row(sessionmaker, thread_id)
    turn_id = uuid.uuid4()
    async with session_scope(sessionmaker) as db:
        db.add(Turn(id=turn_id, thread_id=row.id, user_id=row.user_id))
        await db.flush()
        await db.exec(
            sa.update(Thread)
            .where(Thread.id == row.id)
            .values(last_turn_id=turn_id, last_turn_status="running")
        )
    await leases.claim(
        sessionmaker,
        user_id=row.user_id,
        thread_id=row.id,
        holder=turn_id,
        lease=timedelta(minutes=5),
        incarnation=incarnation,
    )
    return turn_id


class TestRestartFreesLeases:
    async def test_a_restarted_node_answers_its_crashed_turns_threads_at_once(
        self, settings_factory, tmp_path, alice
    ) -> None:
        node = f"node-{uuid.uuid4().hex[:8]}"
        settings = settings_factory(DATA_DIR=tmp_path / "node", NODE_ID=node)
        other_incarnation = uuid.uuid4()
        async with start_app(settings) as first, first.client() as client:
            mine = await create_thread(client, alice)
            theirs = await create_thread(client, alice)
            async with session_scope(first.sessionmaker) as db:
                db.add(NodeIncarnation(id=other_incarnation, node_id=f"{node}-other"))
            crashed = await hold_as_crashed_turn(
                first.sessionmaker, mine, first.state["node"].incarnation
            )
            await hold_as_crashed_turn(first.sessionmaker, theirs, other_incarnation)
        async with start_app(settings) as second, second.client() as client:
            assert second.state["node"].fresh
            assert (await thread_row(second.sessionmaker, mine)).active_turn_id is None
            async with second.sessionmaker() as db:
                turn = await db.get_one(Turn, crashed)
            assert (turn.status, turn.error_code) == ("failed", "interrupted")
            thread = (await client.get(f"/api/threads/{mine}", headers=alice)).json()
            assert thread["last_turn_status"] == "failed"
            assert reply_text(await send(client, mine, "list tasks", alice)) == (
                "You have no tasks."
            )
            # Another node's lease is not this node's to free: it runs out by itself.
            busy = await client.post(
                f"/api/threads/{theirs}/messages", json={"text": "hi"}, headers=alice
            )
            assert busy.status_code == 409
