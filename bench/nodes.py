"""Workload 8: what running on several nodes costs, measured in one run.

- Event log: the server's CPU per streamed turn with turn events written to PostgreSQL
  (`TURN_EVENTS_FLUSH_MS=100`, the default) against the same server with none (`0`), both
  one worker, taking turns in rotated order. CPU is the server processes' user+system time
  from /proc (what the events cost the app itself; PostgreSQL's share is not counted).
- Two nodes: the same streamed load through a round-robin proxy over two nodes (one worker
  each, own DATA_DIR and NODE_ID, one PostgreSQL; a new connection per request so turns of a
  thread land on either node) against one node alone.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx

from bench.env import Database
from bench.fds import children
from bench.report import Row
from bench.server import Server, create_thread, running_server, streamed_turn
from bench.service import text_for
from bench.stats import ratio, rotated, summarize

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / TICKS


class Target:
    def __init__(self, name: str, url: str, servers: list[Server], tokens: list[str]) -> None:
        self.name, self.servers = name, servers
        limits = httpx.Limits(max_keepalive_connections=0)  # the proxy spreads connections
        self.clients = [
            httpx.AsyncClient(
                base_url=url,
                headers={"Authorization": f"Bearer {t}"},
                timeout=60.0,
                limits=limits,
            )
            for t in tokens
        ]
        self.threads: list[str] = []

    def pids(self) -> list[int]:
        return [p for s in self.servers for p in (s.proc.pid, *children(s.proc.pid))]

    async def batch(self, turns: int, first_k: int) -> dict[str, Any]:
        latencies, errors = [], 0

        async def converse(i: int) -> None:
            nonlocal errors
            for k in range(first_k, first_k + turns):
                began = time.perf_counter()
                if await streamed_turn(self.clients[i], self.threads[i], text_for(i, k)):
                    errors += 1
                latencies.append(time.perf_counter() - began)

        cpu0, began = cpu_seconds(self.pids()), time.perf_counter()
        await asyncio.gather(*(converse(i) for i in range(len(self.clients))))
        wall, cpu = time.perf_counter() - began, cpu_seconds(self.pids()) - cpu0
        return {"latencies": latencies, "errors": errors, "wall_s": wall, "cpu_s": cpu}


def w11(root: Path, database: Database, *, clients: int, rounds: int, per_round: int):
    from app.auth import TokenService
    from app.config import load_settings
    from tests.drills.proxy import round_robin

    secret = secrets.token_urlsafe(48)
    tokens = TokenService.from_settings(load_settings(AUTH_JWT_SECRET=secret))
    run = secrets.token_hex(4)

    def start(stack: ExitStack, name: str, **env: str) -> Server:
        return stack.enter_context(
            running_server(1, root / name, database.url, secret, {"NODE_ID": name, **env})
        )

    with ExitStack() as stack:
        events_on = start(stack, "events-on", TURN_EVENTS_FLUSH_MS="100")
        events_off = start(stack, "events-off", TURN_EVENTS_FLUSH_MS="0")
        node_a, node_b = start(stack, "node-a"), start(stack, "node-b")

        async def main() -> dict[str, list[dict[str, Any]]]:
            proxy_ctx = round_robin([_hostport(node_a), _hostport(node_b)])
            proxy = await proxy_ctx.__aenter__()
            try:

                def users(name: str) -> list[str]:
                    return [tokens.issue(f"w11-{run}-{name}-{i}") for i in range(clients)]

                targets = [
                    Target("events", events_on.url, [events_on], users("on")),
                    Target("no-events", events_off.url, [events_off], users("off")),
                    Target("1-node", node_a.url, [node_a], users("one")),
                    Target("2-nodes", proxy.base_url, [node_a, node_b], users("two")),
                ]
                for t in targets:
                    t.threads = list(await asyncio.gather(*(create_thread(c) for c in t.clients)))
                    await t.batch(1, 0)  # warm-up
                results: dict[str, list[dict[str, Any]]] = {t.name: [] for t in targets}
                for r in range(rounds):
                    for t in rotated(targets, r):
                        results[t.name].append(await t.batch(per_round, 1 + r * per_round))
                for t in targets:
                    await asyncio.gather(*(c.aclose() for c in t.clients))
                return results
            finally:
                await proxy_ctx.__aexit__(None, None, None)

        results = asyncio.run(main())
    return _rows(results, clients), {"clients": clients, "results": _raw(results)}


def _hostport(server: Server) -> tuple[str, int]:
    host, port = server.url.removeprefix("http://").split(":")
    return host, int(port)


def _per_turn(batches: list[dict[str, Any]]) -> tuple[float, float, int, list[float]]:
    turns = sum(len(b["latencies"]) for b in batches)
    cpu_ms = sum(b["cpu_s"] for b in batches) / turns * 1000
    thru = turns / sum(b["wall_s"] for b in batches)
    errors = sum(b["errors"] for b in batches)
    return cpu_ms, thru, errors, [x for b in batches for x in b["latencies"]]


def _rows(results: dict[str, list[dict[str, Any]]], clients: int) -> list[Row]:
    rows = []
    base_cpu = _per_turn(results["no-events"])[0]
    base_thru = _per_turn(results["1-node"])[1]
    for name in ("no-events", "events", "1-node", "2-nodes"):
        cpu_ms, thru, errors, latencies = _per_turn(results[name])
        s = summarize(latencies)
        measure = (
            "server CPU per streamed turn"
            if name in ("events", "no-events")
            else f"{clients} clients, streamed turns"
        )
        row = Row("11", measure, name, s["median_ms"], s["p95_ms"], throughput=thru)
        row.value = f"cpu {cpu_ms:.2f} ms/turn, err {errors}"
        if name == "events":
            row.ratio, row.ratio_of = ratio(cpu_ms, base_cpu), "cpu/no-events"
            row.target = "<= 1.10x cpu"
            row.met = bool(row.ratio is not None and row.ratio <= 1.10 and errors == 0)
        if name == "2-nodes":
            row.ratio, row.ratio_of = ratio(thru, base_thru), "thru/1-node"
        rows.append(row)
    return rows


def _raw(results: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    return {
        name: [{k: v for k, v in b.items() if k != "latencies"} for b in batches]
        for name, batches in results.items()
    }
