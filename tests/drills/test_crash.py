"""Drill 2: crashes. kill -9 the server at random moments during streamed turns, 20+ times.

After every kill (the server is dead, so both stores are at rest): every user message the
server confirmed (its `user_message` event arrived) is in PostgreSQL, and no memory file holds
a user turn that PostgreSQL lacks. After the last restart every thread takes one more turn;
409 is retried for a while because a crashed turn's lease has to expire first.

Set DRILL_SEED to replay a run's random choices (timing still varies).
"""

from __future__ import annotations

import asyncio
import os
import random
import time
import uuid
from dataclasses import dataclass, field

import httpx
import pytest

from tests.drills.conftest import ServerFactory
from tests.drills.harness import ServerProcess, bearer, report
from tests.drills.stores import (
    Log,
    ThreadRef,
    memory_path,
    memory_violations,
    read_memory,
    user_items,
)
from tests.drills.turns import client_for, create_thread, stream_turn, turn_with_retry

KILLS = 20
CLIENTS = 4
MAX_THREADS_PER_CLIENT = 12
KILL_DELAY_SECONDS = (0.0, 0.8)  # after the round's first confirmed user message
FIRST_CONFIRMATION_WAIT_SECONDS = 10.0
RETRY_BLOCKED_AFTER_SECONDS = 5.0
LEASE_WAIT_SECONDS = 45.0  # the lease is heartbeat-renewed and should expire within ~30 s


@dataclass
class CrashThread:
    ref: ThreadRef
    blocked_until: float = 0.0


@dataclass
class Tally:
    sent: int = 0
    completed: int = 0
    conflicts: int = 0
    cut_off: int = 0  # the stream had started (200) when the kill cut it
    refused: int = 0  # no server to answer (after a kill)
    in_flight: int = 0
    kills_mid_turn: int = 0
    confirmed: dict[str, tuple[str, str]] = field(default_factory=dict)  # id -> (thread, text)
    unexpected: list[str] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    restarts: list[float] = field(default_factory=list)
    memory_turns: int = 0  # user turns in memory at the end (all threads)
    logged_turns: int = 0  # user messages in PostgreSQL at the end


@dataclass
class Client:
    number: int
    subject: str
    headers: dict[str, str]
    rng: random.Random
    threads: list[CrashThread] = field(default_factory=list)
    counter: int = 0

    def next_text(self, round_no: int) -> str:
        self.counter += 1
        tag = f"r{round_no}c{self.number}n{self.counter}"
        if self.rng.random() < 0.5:
            return f"remember that {tag} is {self.rng.randrange(10**6)}"
        return f"add task {tag}"

    def available(self) -> CrashThread | None:
        now = time.monotonic()
        free = [t for t in self.threads if t.blocked_until <= now]
        return self.rng.choice(free) if free else None


async def client_round(
    http: httpx.AsyncClient,
    client: Client,
    round_no: int,
    tally: Tally,
    first_confirmation: asyncio.Event,
    stop: asyncio.Event,
) -> None:
    """Send turns one after another until the server dies (or `stop` is set)."""

    def on_event(event) -> None:
        if event.event == "user_message":
            first_confirmation.set()

    while not stop.is_set():
        thread = client.available()
        if thread is None and len(client.threads) < MAX_THREADS_PER_CLIENT:
            try:
                thread_id = await create_thread(http, client.headers)
            except (httpx.HTTPError, AssertionError):
                return  # the server is gone
            thread = CrashThread(ThreadRef(thread_id, client.subject, client.headers))
            client.threads.append(thread)
        if thread is None:
            await asyncio.sleep(0.1)
            continue
        text = client.next_text(round_no)
        tally.sent += 1
        tally.in_flight += 1
        try:
            outcome = await stream_turn(
                http, thread.ref.thread_id, text, client.headers, on_event=on_event
            )
        finally:
            tally.in_flight -= 1
        if outcome.user_message is not None:
            tally.confirmed[str(outcome.user_message["id"])] = (thread.ref.thread_id, text)
        if outcome.ok:
            tally.completed += 1
        elif outcome.status == 409:
            tally.conflicts += 1
            thread.blocked_until = time.monotonic() + RETRY_BLOCKED_AFTER_SECONDS
        elif outcome.status == 0:
            tally.refused += 1
            return
        elif outcome.transport_error is not None:
            tally.cut_off += 1
            if stop.is_set():
                return
        else:
            tally.unexpected.append(f"round {round_no}: {outcome.describe()}")


def check_at_rest(log: Log, server: ServerProcess, clients: list[Client], tally: Tally, when: str):
    """The invariants, checked while no server process is running."""
    missing = set(tally.confirmed) - log.existing_message_ids(tally.confirmed)
    tally.violations += [
        f"{when}: confirmed user message {mid} {tally.confirmed[mid]} is not in PostgreSQL"
        for mid in sorted(missing)
    ]
    refs = [t.ref for c in clients for t in c.threads]
    tally.violations += [f"{when}: {v}" for v in memory_violations(log, server.session_dir, refs)]


async def crash_round(
    http: httpx.AsyncClient,
    server: ServerProcess,
    clients: list[Client],
    round_no: int,
    tally: Tally,
    rng: random.Random,
) -> None:
    first_confirmation, stop = asyncio.Event(), asyncio.Event()
    tasks = [
        asyncio.create_task(client_round(http, c, round_no, tally, first_confirmation, stop))
        for c in clients
    ]
    try:
        async with asyncio.timeout(FIRST_CONFIRMATION_WAIT_SECONDS):
            await first_confirmation.wait()
    except TimeoutError:
        tally.unexpected.append(f"round {round_no}: no turn was confirmed before the kill")
    await asyncio.sleep(rng.uniform(*KILL_DELAY_SECONDS))
    if tally.in_flight:
        tally.kills_mid_turn += 1
    await asyncio.to_thread(server.kill)
    stop.set()
    async with asyncio.timeout(60):
        await asyncio.gather(*tasks)


class TestCrash:
    @pytest.mark.drill
    async def test_kill_dash_nine_mid_turn_never_loses_or_invents_a_turn(
        self, server_factory: ServerFactory, drill_database: str, record_property
    ) -> None:
        seed = int(os.environ.get("DRILL_SEED") or time.time_ns() % 1_000_000_007)
        report(record_property, "crash_seed", f"crash drill seed {seed} (DRILL_SEED={seed})")
        rng = random.Random(seed)
        run = uuid.uuid4().hex[:8]
        clients = [
            Client(n, f"crash-{run}-{n}", bearer(f"crash-{run}-{n}"), random.Random(rng.random()))
            for n in range(CLIENTS)
        ]
        server = server_factory(workers=1)
        log = Log(drill_database)
        tally = Tally()
        began = time.monotonic()
        tally.restarts.append(server.start())

        async with client_for(server.base_url, timeout=30.0) as http:
            for round_no in range(1, KILLS + 1):
                await crash_round(http, server, clients, round_no, tally, rng)
                check_at_rest(log, server, clients, tally, f"after kill {round_no}")
                tally.restarts.append(await asyncio.to_thread(server.start))
            restarted = time.monotonic()
            refs = [t.ref for c in clients for t in c.threads]
            finals = await asyncio.gather(
                *(
                    turn_with_retry(
                        http,
                        ref.thread_id,
                        "what did I ask you to remember?",
                        ref.headers,
                        retry_statuses=frozenset({409}),
                        within=LEASE_WAIT_SECONDS,
                    )
                    for ref in refs
                )
            )
            all_free_after = time.monotonic() - restarted
        stuck = [
            f"{ref.thread_id}: {outcome.describe()} lease {log.thread(ref.thread_id)}"
            for ref, (outcome, _) in zip(refs, finals, strict=True)
            if not outcome.ok
        ]
        server.stop()
        check_at_rest(log, server, clients, tally, "after the final turns")
        tally.violations += bookkeeping_violations(log, server, refs, tally)

        figures = (
            f"crash drill (seed {seed}): {KILLS} kills ({tally.kills_mid_turn} with a turn in "
            f"flight), {len(tally.restarts) - 1} recoveries (restart p50 "
            f"{sorted(tally.restarts)[len(tally.restarts) // 2]:.1f} s, max "
            f"{max(tally.restarts):.1f} s); {tally.sent} turns sent, {len(tally.confirmed)} "
            f"confirmed, {tally.completed} completed, {tally.cut_off} cut off mid-stream, "
            f"{tally.refused} refused while down, {tally.conflicts} x 409; "
            f"{len(refs)} threads, final turns "
            f"{len(refs) - len(stuck)}/{len(refs)} ok, the last after {all_free_after:.1f} s "
            f"(max attempts {max(a for _, a in finals)}); memory holds {tally.memory_turns} of "
            f"{tally.logged_turns} logged user turns; {len(tally.violations)} invariant "
            f"violations, {len(tally.unexpected)} unexpected responses; "
            f"{time.monotonic() - began:.0f} s"
        )
        report(record_property, "crash_figures", figures)
        assert not tally.violations, "\n".join(tally.violations[:10])
        assert not tally.unexpected, "\n".join(tally.unexpected[:10])
        assert not stuck, f"{len(stuck)} threads failed their final turn:\n" + "\n".join(stuck[:5])


def bookkeeping_violations(
    log: Log, server: ServerProcess, refs: list[ThreadRef], tally: Tally
) -> list[str]:
    """After a completed turn in every thread, the row mirrors its memory file exactly."""
    problems = []
    for ref in refs:
        row = log.thread(ref.thread_id)
        path = memory_path(server.session_dir, log.user_id(ref.subject), ref.thread_id)
        items = read_memory(path) if path.exists() else []
        tally.memory_turns += len(user_items(items))
        tally.logged_turns += len(log.user_texts(ref.thread_id))
        if row["memory_item_count"] != len(items) or row["active_turn_id"] is not None:
            problems.append(
                f"thread {ref.thread_id}: file has {len(items)} items, row says "
                f"{row['memory_item_count']} (lease {row['active_turn_id']})"
            )
    return problems
