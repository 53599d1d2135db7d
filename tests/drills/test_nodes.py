"""Drill: several nodes on one PostgreSQL. Three app processes, each with its own DATA_DIR and
NODE_ID, behind a round-robin proxy started here (a new connection per request, so a thread's
turns land on any node): 32 clients x 20 streamed turns with tool calls, for each memory
backend; one node is killed with -9 mid-load and its threads continue on the others once
their leases expire. At the end every thread's log holds each sent message exactly once with
a reply, memory equals the log on the node that holds it, and no request got a 5xx.

Two more scenes: a stream started on one node is resumed on another (no gap, no duplicate),
and a node killed mid-turn and restarted serves that thread again at once (it frees its
previous start's leases), not after the lease. And `serve --workers 2` merges both workers'
counters in /metrics.
"""

from __future__ import annotations

import asyncio
import re
import statistics
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field

import httpx
import pytest

from tests.drills.conftest import ServerFactory
from tests.drills.harness import REPO_ROOT, ServerProcess, bearer, report
from tests.drills.proxy import round_robin
from tests.drills.stores import Log, memory_path, read_memory, user_items
from tests.drills.test_load import script
from tests.drills.turns import TurnOutcome, create_thread, stream_turn
from tests.sse import iter_events

# Adding a backend is one line here (its name as AGENT_MEMORY_BACKEND takes it).
BACKENDS = ["sqlite", "postgres"]
NODES = 3
CLIENTS = 32
TURNS = 20
LEASE_SECONDS = 10  # short, so the drill sees leases expire; 6 s stopped turns under load
KILL_AFTER_TURNS = CLIENTS * TURNS // 3
LOAD_LIMIT_SECONDS = 300.0
RETRY_PAUSE_SECONDS = 0.5


@dataclass
class Tally:
    turns: int = 0
    attempts: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    transport_errors: int = 0
    retried_confirmed: int = 0  # resent through the retry endpoint (the log had it)
    killed_at: float | None = None
    blocked: dict[str, float] = field(default_factory=dict)  # thread -> first failure after kill
    resumed_after: list[float] = field(default_factory=list)  # seconds from it to a reply
    kill_now: asyncio.Event = field(default_factory=asyncio.Event)
    failures: dict[str, int] = field(default_factory=dict)  # why attempts failed

    def failed(self, outcome: TurnOutcome) -> None:
        error = outcome.first("error")
        why = (
            outcome.transport_error.split(":")[0]
            if outcome.transport_error
            else error["code"]
            if error
            else str(outcome.status)
        )
        self.failures[why] = self.failures.get(why, 0) + 1

    def count(self, status: int) -> None:
        self.statuses[status] = self.statuses.get(status, 0) + 1


def node_env(name: str, backend: str, **extra: str) -> dict[str, str]:
    env = {"NODE_ID": name, "TURN_LEASE_SECONDS": str(LEASE_SECONDS), **extra}
    if backend != "sqlite":
        env["AGENT_MEMORY_BACKEND"] = backend
    return env


def one_shot_client(base_url: str) -> httpx.AsyncClient:
    """No keep-alive: every request is a new connection, so the proxy spreads requests."""
    limits = httpx.Limits(max_connections=256, max_keepalive_connections=0)
    return httpx.AsyncClient(base_url=base_url, timeout=60.0, limits=limits)


async def logged_message(http: httpx.AsyncClient, thread_id: str, text: str, headers) -> str | None:
    """The id of the thread's newest user message if it is `text` (the log has it), else None."""
    for _ in range(20):
        try:
            r = await http.get(
                f"/api/threads/{thread_id}/messages?order=desc&limit=2", headers=headers
            )
        except httpx.HTTPError:
            r = None
        if r is not None and r.status_code == 200:
            users = [m for m in r.json()["data"] if m["role"] == "user"]
            return str(users[0]["id"]) if users and users[0]["content"] == text else None
        await asyncio.sleep(RETRY_PAUSE_SECONDS)
    raise AssertionError("the log could not be read")


async def one_turn(
    http: httpx.AsyncClient, thread_id: str, text: str, headers, tally: Tally
) -> None:
    """Send `text` until a reply is saved; a message the log already has (a kill cut its
    turn off, or its turn failed) is answered again through retry, never sent twice."""
    url = f"/api/threads/{thread_id}/messages"
    deadline = time.monotonic() + LOAD_LIMIT_SECONDS
    while time.monotonic() < deadline:
        tally.attempts += 1
        outcome = await _stream(http, url, text, headers)
        tally.count(outcome.status)
        if outcome.transport_error:
            tally.transport_errors += 1
        if outcome.ok:
            tally.turns += 1
            if tally.turns >= KILL_AFTER_TURNS:
                tally.kill_now.set()
            if thread_id in tally.blocked:
                tally.resumed_after.append(time.monotonic() - tally.blocked.pop(thread_id))
            return
        tally.failed(outcome)
        if tally.killed_at is not None:
            tally.blocked.setdefault(thread_id, time.monotonic())
        await asyncio.sleep(RETRY_PAUSE_SECONDS)  # a 409: the lease of a cut-off turn
        message_id = await logged_message(http, thread_id, text, headers)
        if message_id is None:
            url = f"/api/threads/{thread_id}/messages"
        else:
            tally.retried_confirmed += 1
            url = f"/api/threads/{thread_id}/messages/{message_id}/retry"
    raise AssertionError(f"{text!r} in {thread_id} got no reply in {LOAD_LIMIT_SECONDS} s")


async def _stream(http, url: str, text: str, headers) -> TurnOutcome:
    if url.endswith("/messages"):
        return await stream_turn(http, url.split("/")[3], text, headers)
    outcome = TurnOutcome(text=text)
    try:
        async with http.stream("POST", url, headers=headers) as response:
            outcome.status = response.status_code
            if response.status_code == 200:
                outcome.events = [e async for e in iter_events(response)]
    except httpx.HTTPError as e:
        outcome.transport_error = type(e).__name__
    return outcome


async def client_run(http, n: int, run: str, tally: Tally) -> tuple[str, str, list[str]]:
    subject = f"nodes-{run}-{n}"
    headers = bearer(subject)
    thread_id = await create_thread(http, headers, f"nodes {n}")
    texts = [text for text, _ in script(n)]
    for text in texts:
        await one_turn(http, thread_id, text, headers, tally)
    return thread_id, subject, texts


def check_threads(
    log: Log,
    nodes: dict[str, ServerProcess],
    threads: list[tuple[str, str, list[str]]],
    backend: str,
) -> list[str]:
    """Each text once, each with a reply; memory (on the node holding it, or in PostgreSQL
    for the shared `postgres` backend) equals the log."""
    problems = []
    for thread_id, subject, texts in threads:
        messages = log.messages(thread_id)
        roles = [m["role"] for m in messages]
        users = [str(m["content"]) for m in messages if m["role"] == "user"]
        if users != texts or roles != ["user", "assistant"] * len(texts):
            problems.append(f"{thread_id}: log users {users} roles {roles}")
            continue
        if backend == "postgres":
            if user_items(log.memory_items(thread_id)) != users:
                problems.append(f"{thread_id}: memory in PostgreSQL != log")
            continue
        (row,) = log._query("SELECT memory_node FROM threads WHERE id = %s", (thread_id,))
        node = nodes.get(row["memory_node"])
        if node is None:
            problems.append(f"{thread_id}: memory on unknown node {row['memory_node']}")
            continue
        path = memory_path(node.session_dir, log.user_id(subject), thread_id)
        if user_items(read_memory(path)) != users:
            problems.append(f"{thread_id}: memory on {row['memory_node']} != log")
    return problems


def verify_node(server: ServerProcess) -> subprocess.CompletedProcess[str]:
    """`sessions verify` with the node's own settings: memory against the log, any backend."""
    return subprocess.run(
        [sys.executable, "-m", "app", "sessions", "verify"],
        cwd=REPO_ROOT,
        env=server.environment(),
        capture_output=True,
        text=True,
        timeout=120,
    )


class TestNodes:
    @pytest.mark.drill
    @pytest.mark.parametrize("backend", BACKENDS)
    async def test_three_nodes_behind_a_round_robin_proxy_one_killed(
        self, backend: str, server_factory: ServerFactory, drill_database: str, record_property
    ) -> None:
        names = [f"node-{i}" for i in range(NODES)]
        servers = {name: server_factory(**node_env(name, backend)) for name in names}
        for server in servers.values():
            server.start()
        run, tally = uuid.uuid4().hex[:8], Tally()
        victim = servers[names[0]]
        backends = [("127.0.0.1", s.port) for s in servers.values()]
        began = time.monotonic()
        async with round_robin(backends) as proxy, one_shot_client(proxy.base_url) as http:

            async def kill_midway() -> None:
                await tally.kill_now.wait()
                await asyncio.to_thread(victim.kill)
                tally.killed_at = time.monotonic()

            killer = asyncio.create_task(kill_midway())
            threads = await asyncio.gather(
                *(client_run(http, n, run, tally) for n in range(CLIENTS))
            )
            await killer
        wall = time.monotonic() - began
        victim.start()  # its DATA_DIR still holds the memory of threads it served last
        log = Log(drill_database)
        problems = check_threads(log, servers, threads, backend)
        verified = {name: verify_node(s) for name, s in servers.items()}
        five_xx = sum(n for status, n in tally.statuses.items() if status >= 500)
        continued = max(tally.resumed_after, default=0.0)
        figures = (
            f"nodes drill [{backend}]: {NODES} nodes, {CLIENTS} clients x {TURNS} turns = "
            f"{tally.turns} turns in {wall:.1f} s ({tally.turns / wall:.1f}/s); "
            f"connections per node {proxy.connections}, refused {proxy.refused}; "
            f"statuses {dict(sorted(tally.statuses.items()))}, transport errors "
            f"{tally.transport_errors}, failed attempts {tally.failures}, retried "
            f"{tally.retried_confirmed}; node killed after {KILL_AFTER_TURNS} turns: "
            f"{len(tally.resumed_after)} threads hit, each replied again within "
            f"{continued:.1f} s of its first failure (median "
            f"{statistics.median(tally.resumed_after or [0.0]):.1f} s; lease {LEASE_SECONDS} s)"
        )
        report(record_property, f"nodes_{backend}", figures)
        assert tally.turns == CLIENTS * TURNS
        assert five_xx == 0, figures
        assert problems == [], problems[:5]
        assert {n: v.returncode for n, v in verified.items()} == dict.fromkeys(names, 0), {
            n: v.stdout[-2000:] + v.stderr[-2000:] for n, v in verified.items()
        }
        assert all(count > 0 for count in proxy.connections)

    @pytest.mark.drill
    async def test_a_stream_resumes_on_another_node_without_gap_or_duplicate(
        self, server_factory: ServerFactory, record_property
    ) -> None:
        first = server_factory(**node_env("resume-a", "sqlite", OFFLINE_MODEL_DELAY_MS="20"))
        second = server_factory(**node_env("resume-b", "sqlite"))
        first.start()
        second.start()
        headers = bearer(f"resumer-{uuid.uuid4().hex[:8]}")
        async with (
            httpx.AsyncClient(base_url=first.base_url, timeout=60) as on_a,
            httpx.AsyncClient(base_url=second.base_url, timeout=60) as on_b,
        ):
            thread_id = await create_thread(on_a, headers)
            for n in range(12):
                assert (
                    await stream_turn(
                        on_a, thread_id, f"remember that fact {n} is {n * 7}", headers
                    )
                ).ok
            seen = []
            async with on_a.stream(
                "POST",
                f"/api/threads/{thread_id}/messages",
                json={"text": "what did I ask you to remember?"},
                headers=headers,
            ) as response:
                async for event in iter_events(response):
                    seen.append(event)
                    if sum(e.event == "text_delta" for e in seen) == 5:
                        break  # the connection drops mid-reply
            turn_id = seen[0].data["metadata"]["turn_id"]
            began = time.monotonic()
            async with on_b.stream(
                "GET",
                f"/api/threads/{thread_id}/turns/{turn_id}/events",
                headers={**headers, "Last-Event-ID": seen[-1].id},
            ) as response:
                assert response.status_code == 200
                rest = [e async for e in iter_events(response)]
            took = time.monotonic() - began
        ids = [int(e.id) for e in seen + rest]
        text = "".join(e.data["delta"] for e in seen + rest if e.event == "text_delta")
        (final,) = [e.data for e in rest if e.event == "assistant_message"]
        report(
            record_property,
            "resume_across_nodes",
            f"resume across nodes: {len(seen)} events on node A, {len(rest)} on node B after "
            f"Last-Event-ID {seen[-1].id}; followed to done in {took:.2f} s",
        )
        assert ids == sorted(set(ids))  # no event twice, none out of order
        assert text == final["content"]
        assert rest[-1].event == "done"

    @pytest.mark.drill
    async def test_a_node_killed_mid_turn_serves_the_thread_again_once_restarted(
        self, server_factory: ServerFactory, record_property
    ) -> None:
        # The default 30 s lease: a restart (a few seconds) must not merely outlast it.
        server = server_factory(
            **node_env("restarter", "sqlite", OFFLINE_MODEL_DELAY_MS="500"),
        )
        server.extra_env["TURN_LEASE_SECONDS"] = "30"
        server.start()
        headers = bearer(f"restart-{uuid.uuid4().hex[:8]}")
        async with httpx.AsyncClient(base_url=server.base_url, timeout=60) as http:
            thread_id = await create_thread(http, headers)
            async with http.stream(
                "POST",
                f"/api/threads/{thread_id}/messages",
                json={"text": "remember that the kill comes now"},
                headers=headers,
            ) as response:
                async for _ in iter_events(response):
                    server.kill()  # the user message is committed; the turn holds the lease
                    break
        ready = server.start()
        began, accepted = time.monotonic(), None

        def on_event(_event) -> None:
            nonlocal accepted
            if accepted is None:  # user_message: the turn was accepted, not 409
                accepted = time.monotonic() - began

        async with httpx.AsyncClient(base_url=server.base_url, timeout=60) as http:
            outcome = await stream_turn(http, thread_id, "list tasks", headers, on_event=on_event)
        report(
            record_property,
            "restart_frees_leases",
            f"kill -9 mid-turn, lease 30 s: restarted in {ready:.1f} s, the thread's next turn "
            f"was accepted {accepted:.2f} s after ready (before: 409 until the lease expired)",
        )
        assert outcome.ok, outcome.describe()
        assert accepted is not None
        assert ready + accepted < 30 - 5

    @pytest.mark.drill
    async def test_two_workers_counters_are_merged_in_metrics(
        self, server_factory: ServerFactory
    ) -> None:
        server = server_factory(workers=2)
        server.start()
        headers = bearer(f"metrics-{uuid.uuid4().hex[:8]}")
        async with httpx.AsyncClient(
            base_url=server.base_url, timeout=30, limits=httpx.Limits(max_keepalive_connections=0)
        ) as http:
            thread_id = await create_thread(http, headers)
            for n in range(10):
                assert (await stream_turn(http, thread_id, f"add task t{n}", headers)).ok
            totals = set()
            for _ in range(6):  # whichever worker answers, it reports both workers' turns
                text = (await http.get("/metrics")).text
                (value,) = re.findall(
                    r'^threadkeeper_turns_total\{status="completed"\} (\S+)$', text, re.M
                )
                totals.add(float(value))
        assert totals == {10.0}
        assert (server.data_dir / "metrics").is_dir()
