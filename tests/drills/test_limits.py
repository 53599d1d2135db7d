"""Drill: two app processes on one PostgreSQL enforce one fair-use limit, not two.

Both servers run with LIMIT_TURNS_PER_MINUTE=10 and a slow offline model. One user fires 30
sends at once on 30 threads, half to each server: exactly 10 are answered and 20 refused
(429, limit turns_per_minute), later sends are refused too, and PostgreSQL holds exactly 10
user messages. Another user,
whose override (set through one server's admin API, read by both) allows 3 running turns and
no per-minute limit, fires 12 sends at once: exactly 3 run, 9 are refused (running_turns);
once those end, a send is answered again. Figures: what each server admitted and refused,
and how fast a refusal comes back.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections import Counter

import httpx
import psycopg
import pytest

from tests.drills.conftest import ServerFactory
from tests.drills.harness import ServerProcess, bearer, libpq_url, report, token_service
from tests.drills.turns import client_for, create_thread

pytestmark = pytest.mark.drill

PORTS = (8611, 8612)  # this engineer's range (8600-8699)
PER_MINUTE = 10
BURST = 30
RUNNING = 3
RUNNING_BURST = 12
JSON = {"Accept": "application/json"}


async def _send(
    client: httpx.AsyncClient, thread_id: str, headers: dict[str, str]
) -> tuple[int, str | None, float]:
    began = time.perf_counter()
    response = await client.post(
        f"/api/threads/{thread_id}/messages", json={"text": "help"}, headers={**headers, **JSON}
    )
    seconds = time.perf_counter() - began
    limit = response.json().get("limit") if response.status_code == 429 else None
    return response.status_code, limit, seconds


async def _burst(
    clients: list[httpx.AsyncClient], threads: list[tuple[int, str]], headers: dict[str, str]
) -> list[tuple[int, int, str | None, float]]:
    """Every thread's send at once, each to the server that made it: (server, status, ...)."""
    results = await asyncio.gather(*(_send(clients[n], t, headers) for n, t in threads))
    return [(n, *result) for (n, _), result in zip(threads, results, strict=True)]


def _user_messages(database_url: str, subject: str) -> int:
    with psycopg.connect(libpq_url(database_url)) as conn:
        row = conn.execute(
            "SELECT count(*) FROM messages m JOIN threads t ON t.id = m.thread_id "
            "JOIN users u ON u.id = t.user_id WHERE u.subject = %s AND m.role = 'user'",
            (subject,),
        ).fetchone()
    assert row is not None
    return int(row[0])


def _figures(results: list[tuple[int, int, str | None, float]]) -> str:
    by_server = Counter((n, status) for n, status, _, _ in results)
    refusals = [s * 1000 for _, status, _, s in results if status == 429]
    return (
        ", ".join(
            f"server {n + 1}: {count}x{status}" for (n, status), count in sorted(by_server.items())
        )
        + f"; refusal median {statistics.median(refusals):.0f} ms, max {max(refusals):.0f} ms"
    )


@pytest.fixture(scope="module")
def servers(server_factory: ServerFactory) -> list[ServerProcess]:
    made = []
    for port in PORTS:
        server = server_factory(
            LIMIT_TURNS_PER_MINUTE=str(PER_MINUTE),
            LIMIT_RUNNING_TURNS="0",
            LIMIT_DAILY_TOKENS="0",
            OFFLINE_MODEL_DELAY_MS="40",
        )
        server.port = port
        server.start()
        made.append(server)
    return made


class TestTwoNodesOneLimit:
    async def test_turns_per_minute_is_one_limit_across_both_servers(
        self, servers: list[ServerProcess], record_property
    ) -> None:
        subject = "drill-burst"
        headers = bearer(subject)
        clients = [client_for(s.base_url) for s in servers]
        try:
            threads = [(n % 2, await create_thread(clients[n % 2], headers)) for n in range(BURST)]
            results = await _burst(clients, threads, headers)
            # Refusals one at a time, once the burst is over: what one costs without a queue.
            alone = [await _send(clients[n % 2], threads[n][1], headers) for n in range(6)]
        finally:
            for client in clients:
                await client.aclose()
        statuses = Counter(status for _, status, _, _ in results)
        assert statuses == {200: PER_MINUTE, 429: BURST - PER_MINUTE}, results
        assert {limit for _, status, limit, _ in results if status == 429} == {"turns_per_minute"}
        assert [status for status, _, _ in alone] == [429] * 6
        assert _user_messages(servers[0].database_url, subject) == PER_MINUTE
        lone = statistics.median(seconds * 1000 for _, _, seconds in alone)
        report(
            record_property,
            "turns_per_minute",
            f"turns per minute: {_figures(results)}; a lone refusal: median {lone:.0f} ms",
        )

    async def test_running_turns_is_one_limit_across_both_servers(
        self, servers: list[ServerProcess], record_property
    ) -> None:
        subject = "drill-running"
        headers = bearer(subject)
        admin = {"Authorization": f"Bearer {token_service().issue('drill-admin', admin=True)}"}
        clients = [client_for(s.base_url) for s in servers]
        try:
            threads = [
                (n % 2, await create_thread(clients[n % 2], headers)) for n in range(RUNNING_BURST)
            ]
            override = await clients[1].put(
                f"/api/admin/users/{subject}/limits",
                json={"running_turns": RUNNING, "turns_per_minute": 0},
                headers=admin,
            )
            assert override.status_code == 200, override.text
            results = await _burst(clients, threads, headers)
            again = await _send(clients[0], threads[0][1], headers)
        finally:
            for client in clients:
                await client.aclose()
        statuses = Counter(status for _, status, _, _ in results)
        assert statuses == {200: RUNNING, 429: RUNNING_BURST - RUNNING}, results
        assert {limit for _, status, limit, _ in results if status == 429} == {"running_turns"}
        assert again[0] == 200
        assert _user_messages(servers[0].database_url, subject) == RUNNING + 1
        report(record_property, "running_turns", "running turns: " + _figures(results))
