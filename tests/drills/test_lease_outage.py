"""Drill (F1): PostgreSQL down for longer than the lease of turns that are still running.

The scene hostile testing used to wedge the service: long turns, the database stopped past
their lease, then sends to the same thread the moment it returns, and a pile of sends after
that. Before the fix the new claim waited forever on the running turn (holding the row lock
that turn needed), the pool filled up, every other user got 503 for minutes, and SIGTERM did
not stop the server. Now: every request is answered in bounded time, other users are served
as soon as the database is back, the thread takes a turn again within a lease, and SIGTERM
ends the process within the shutdown grace.

The lease is shortened (TURN_LEASE_SECONDS=6) and the offline model slowed
(OFFLINE_MODEL_DELAY_MS) so the scene takes seconds, not minutes.
"""

from __future__ import annotations

import asyncio
import shutil
import signal
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.drills.conftest import ServerFactory
from tests.drills.harness import bearer, report
from tests.drills.private_postgres import PrivatePostgres
from tests.drills.stores import Log, ThreadRef, memory_violations
from tests.drills.turns import TurnOutcome, client_for, create_thread, stream_turn

LEASE_SECONDS = 6
DELTA_DELAY_MS = 500  # "help" streams ~24 deltas: a turn of ~12 s
OUTAGE_SECONDS = LEASE_SECONDS + 4
PILE_OF_SENDS = 25
ANSWER_LIMIT_SECONDS = 10.0  # no request may take longer, outage or not
SERVED_AGAIN_SECONDS = 8.0  # other users get 200s within this of the database returning
SHUTDOWN_GRACE_SECONDS = 4


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    # Outside pytest's tmp tree (see test_outage.py: the embedded server runs as another user).
    root = Path(tempfile.mkdtemp(prefix="threadkeeper-drill-pg-"))
    postgres = PrivatePostgres(root / "pg")
    try:
        yield postgres
    finally:
        postgres.close()
        shutil.rmtree(root, ignore_errors=True)


async def timed(coro) -> tuple[float, object]:
    began = time.monotonic()
    result = await coro
    return time.monotonic() - began, result


async def status_of(http: httpx.AsyncClient, method: str, url: str, **kwargs) -> int:
    try:
        response = await http.request(method, url, timeout=ANSWER_LIMIT_SECONDS + 5, **kwargs)
    except httpx.HTTPError:
        return 0
    return response.status_code


async def watch_other_user(
    http: httpx.AsyncClient, headers: dict[str, str], stop: asyncio.Event
) -> list[tuple[float, float, int, int]]:
    """(started, seconds, list status, ready status) every 250 ms for an unrelated user."""
    samples = []
    while not stop.is_set():
        began = time.monotonic()
        listed = await status_of(http, "GET", "/api/threads", headers=headers)
        ready = await status_of(http, "GET", "/health/ready")
        samples.append((began, time.monotonic() - began, listed, ready))
        await asyncio.sleep(0.25)
    return samples


class TestLeaseOutage:
    @pytest.mark.drill
    async def test_a_lapsed_lease_wedges_nothing(
        self, server_factory: ServerFactory, private_postgres: PrivatePostgres, record_property
    ) -> None:
        server = server_factory(
            database_url=private_postgres.url,
            TURN_LEASE_SECONDS=str(LEASE_SECONDS),
            OFFLINE_MODEL_DELAY_MS=str(DELTA_DELAY_MS),
            SHUTDOWN_GRACE_SECONDS=str(SHUTDOWN_GRACE_SECONDS),
            DATABASE_POOL_SIZE="5",
        )
        server.start()
        run = uuid.uuid4().hex[:8]
        alice, carol, dave = (bearer(f"{n}-{run}") for n in ("alice", "carol", "dave"))
        problems: list[str] = []
        async with client_for(server.base_url, timeout=60) as http:
            thread = await create_thread(http, alice)
            other_thread = await create_thread(http, carol)
            await create_thread(http, dave)
            long_turns = [
                asyncio.create_task(stream_turn(http, thread, "help", alice)),
                asyncio.create_task(stream_turn(http, other_thread, "help", carol)),
            ]
            await asyncio.sleep(1.5)  # both turns are streaming
            stop_watch = asyncio.Event()
            watcher = asyncio.create_task(watch_other_user(http, dave, stop_watch))

            await asyncio.to_thread(private_postgres.stop)
            await asyncio.sleep(OUTAGE_SECONDS)
            await asyncio.to_thread(private_postgres.start)
            back = time.monotonic()

            sends = [
                asyncio.create_task(timed(stream_turn(http, thread, f"again {n}", alice)))
                for n in range(PILE_OF_SENDS)
            ]
            results: list[tuple[float, TurnOutcome]] = await asyncio.gather(*sends)  # type: ignore[arg-type]
            first_turn_again = await self._turn_again(http, thread, alice, back)
            long = await asyncio.gather(*long_turns)
            await asyncio.sleep(1.0)
            stop_watch.set()
            samples = await watcher

        for seconds, outcome in results:
            if seconds > ANSWER_LIMIT_SECONDS:
                problems.append(f"a send took {seconds:.1f} s: {outcome.describe()}")
            if outcome.status not in (200, 409, 503):
                problems.append(f"a send got {outcome.describe()}")
        for outcome in long:
            if outcome.first("done") is None:
                problems.append(f"a long turn's stream never ended: {outcome.describe()}")
        after = [s for s in samples if s[0] >= back + SERVED_AGAIN_SECONDS]
        if not after or any(s[2] != 200 or s[3] != 200 for s in after):
            problems.append(f"another user was not served after the outage: {after[:5]}")
        problems += [
            f"{s[1]:.1f} s for another user's request"
            for s in samples
            if s[1] > ANSWER_LIMIT_SECONDS
        ]
        if first_turn_again is None:
            problems.append(
                f"the thread took no turn within {LEASE_SECONDS * 2} s of the database's return"
            )
        refs = [
            ThreadRef(thread, f"alice-{run}", alice),
            ThreadRef(other_thread, f"carol-{run}", carol),
        ]
        problems += memory_violations(Log(private_postgres.url), server.session_dir, refs)

        # A slow turn in flight when SIGTERM arrives must not keep the process alive.
        assert server.proc is not None
        async with client_for(server.base_url, timeout=60) as http:
            in_flight = asyncio.create_task(stream_turn(http, thread, "help", alice))
            await asyncio.sleep(1.0)
            began = time.monotonic()
            server.proc.send_signal(signal.SIGTERM)
            code = await asyncio.to_thread(server.proc.wait, 60)
            stopped_after = time.monotonic() - began
            await in_flight
        if stopped_after > SHUTDOWN_GRACE_SECONDS + 2:
            problems.append(f"SIGTERM took {stopped_after:.1f} s to stop the server")

        statuses = sorted({o.status for _, o in results})
        figures = (
            f"lease outage drill: PostgreSQL down {OUTAGE_SECONDS} s (lease {LEASE_SECONDS} s); "
            f"{PILE_OF_SENDS} sends at its return answered {statuses} within "
            f"{max(s for s, _ in results):.1f} s; long turns ended with "
            f"{[(o.first('error') or {}).get('code', 'completed') for o in long]}; "
            f"the thread took a turn {first_turn_again or float('nan'):.1f} s after the return; "
            f"another user: {sum(1 for s in samples if s[2] == 200)}/{len(samples)} lists ok; "
            f"SIGTERM stopped the server in {stopped_after:.1f} s (exit {code}); "
            f"{len(problems)} problems"
        )
        report(record_property, "lease_outage_figures", figures)
        assert not problems, "\n".join(problems[:12]) + f"\n{server.log_tail()}"

    async def _turn_again(
        self, http: httpx.AsyncClient, thread: str, headers: dict[str, str], since: float
    ) -> float | None:
        """Seconds from the database's return until the thread completes a turn."""
        while time.monotonic() - since < LEASE_SECONDS * 2:
            outcome = await stream_turn(http, thread, "list tasks", headers, limit_seconds=30)
            if outcome.ok:
                return time.monotonic() - since
            await asyncio.sleep(0.5)
        return None
