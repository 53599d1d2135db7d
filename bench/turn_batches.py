"""Concurrent clients taking turns: the batch driver, and its table row, that W7 and W12 share.

A batch gives every client `turns` turns, the clients running concurrently; a target is
anything with `async turn(i, text) -> error or None` (a server front end, the bare SDK).
Each client owns its user and thread, so the batches of one side never queue on another's
thread lease.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Protocol

import httpx

from bench.report import Row
from bench.server import Server, create_thread
from bench.stats import raw_ms, summarize

BATCH_TIME_LIMIT_S = 90.0


class TurnTarget(Protocol):
    async def turn(self, i: int, text: str) -> str | None: ...


def text_for(client: int, k: int) -> str:
    """The same message texts everywhere: facts to remember, and recalling them."""
    return f"remember that x{client} is {k}" if k % 2 == 0 else "what did I ask you to remember?"


class ClientThreads:
    """One server seen by many clients: a user (own token) and a thread per client."""

    def __init__(self, name: str, server: Server, tokens: list[str]) -> None:
        self.name, self.server = name, server
        self.clients = [
            httpx.AsyncClient(
                base_url=server.url,
                headers={"Authorization": f"Bearer {t}"},
                timeout=httpx.Timeout(60.0),
            )
            for t in tokens
        ]
        self.threads: list[str] = []

    async def start(self) -> None:
        self.threads = list(await asyncio.gather(*(create_thread(c) for c in self.clients)))

    async def aclose(self) -> None:
        await asyncio.gather(*(c.aclose() for c in self.clients))


async def run_batch(target: TurnTarget, clients: range, turns: int, first_k: int) -> dict[str, Any]:
    """`turns` turns from each client concurrently; latencies, errors and wall time.

    A batch that outlives BATCH_TIME_LIMIT_S is cut short: the turns it did not finish are
    counted as `missing`, so a stalled side shows up as errors instead of hanging the run.
    """
    latencies: list[float] = []
    errors: list[str] = []

    async def converse(i: int) -> None:
        for k in range(first_k, first_k + turns):
            start = time.perf_counter()
            try:
                error = await target.turn(i, text_for(i, k))
            except Exception as e:  # a failed request is a result
                error = f"{type(e).__name__}: {e}"
            latencies.append(time.perf_counter() - start)
            if error:
                errors.append(error)

    began = time.perf_counter()
    try:
        async with asyncio.timeout(BATCH_TIME_LIMIT_S):
            await asyncio.gather(*(converse(i) for i in clients))
    except TimeoutError:
        errors.append(f"batch time limit ({BATCH_TIME_LIMIT_S:.0f} s) reached")
    wall = time.perf_counter() - began
    missing = len(clients) * turns - len(latencies)
    return {"latencies": latencies, "errors": errors, "missing": missing, "wall_s": wall}


def raw_batches(loaded: dict[str, list[dict[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
    """Each side's batches for the JSON report: latencies in ms, the first five errors."""
    return {
        k: [{**b, "latencies": raw_ms(b["latencies"]), "errors": b["errors"][:5]} for b in v]
        for k, v in loaded.items()
    }


def loaded_row(workload: str, clients: int, name: str, batches: list[dict[str, Any]]) -> Row:
    """One side's row for its concurrent batches: latency percentiles, throughput, errors."""
    latencies = [x for b in batches for x in b["latencies"]]
    wall = sum(b["wall_s"] for b in batches)
    errors = sum(len(b["errors"]) + b["missing"] for b in batches)
    s = summarize(latencies)
    row = Row(workload, f"{clients} clients, streamed turns", name, s["median_ms"], s["p95_ms"])
    row.throughput = len(latencies) / wall if wall else float("nan")
    row.value = f"p99 {s['p99_ms']:.0f} ms, err {errors}"
    if errors:
        row.note = "; ".join(e for b in batches for e in b["errors"][:2])[:300]
    return row
