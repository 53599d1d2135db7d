"""The lease keeper tells a turn whose own save released its lease from one that lost it."""

from __future__ import annotations

import time
import uuid
from datetime import timedelta

from app.db import session_scope
from app.services import leases
from app.services.lease_keeper import LeaseKeeper
from tests.factories import create_thread, thread_row


async def claimed_thread(running, client, alice) -> tuple[uuid.UUID, uuid.UUID, uuid.UUID]:
    """(thread id, user id, turn id): a thread of alice's whose lease a new turn holds."""
    row = await thread_row(running.sessionmaker, await create_thread(client, alice))
    turn_id = uuid.uuid4()
    await leases.claim(
        running.sessionmaker,
        user_id=row.user_id,
        thread_id=row.id,
        holder=turn_id,
        lease=timedelta(seconds=30),
    )
    return row.id, row.user_id, turn_id


class TestRenewal:
    async def test_a_turn_whose_save_released_the_lease_is_not_stopped(
        self, running, client, alice
    ) -> None:
        lost: list[uuid.UUID] = []
        keeper = LeaseKeeper(running.sessionmaker, lease=timedelta(seconds=30), on_lost=lost.append)
        thread_id, _, turn_id = await claimed_thread(running, client, alice)
        keeper.hold(turn_id, thread_id, claimed_at=time.monotonic())
        keeper.saving(turn_id)
        async with session_scope(running.sessionmaker) as db:  # what the save commits
            await leases.release(db, [thread_id], turn_id)
        await keeper._renew(started=time.monotonic())  # a renewal before the turn is dropped
        await keeper.aclose()
        assert lost == []

    async def test_a_turn_whose_lease_another_holder_took_is_stopped(
        self, running, client, alice
    ) -> None:
        lost: list[uuid.UUID] = []
        keeper = LeaseKeeper(running.sessionmaker, lease=timedelta(seconds=30), on_lost=lost.append)
        thread_id, user_id, turn_id = await claimed_thread(running, client, alice)
        keeper.hold(turn_id, thread_id, claimed_at=time.monotonic())
        async with session_scope(running.sessionmaker) as db:  # someone else's release
            await leases.release(db, [thread_id], turn_id)
        await leases.claim(
            running.sessionmaker,
            user_id=user_id,
            thread_id=thread_id,
            holder=uuid.uuid4(),
            lease=timedelta(seconds=30),
        )
        await keeper._renew(started=time.monotonic())
        await keeper.aclose()
        assert lost == [turn_id]
        assert not keeper.still_held(turn_id)
