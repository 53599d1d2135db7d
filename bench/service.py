"""Workload 7: streamed turns through the real service vs the same turns on the bare SDK.

Servers with 1 and 2 workers run side by side and the bare SDK runs in this process; each
round gives every side the same batch of turns from 64 concurrent clients, in a rotated order,
so noise hits all alike. A one-client sequential phase measures what a single turn costs
without queueing: that is the service-overhead ratio the target speaks of.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from bench.env import Database
from bench.fds import FdSampler, children
from bench.report import Row
from bench.server import running_server, streamed_turn
from bench.stats import percentile, ratio, raw_ms, rotated, summarize
from bench.turn_batches import ClientThreads, loaded_row, raw_batches, run_batch, text_for


class HttpTarget(ClientThreads):
    """One server, one user (own token) and one thread per client; REST streamed turns."""

    async def turn(self, i: int, text: str) -> str | None:
        return await streamed_turn(self.clients[i], self.threads[i], text)

    def pids(self) -> list[int]:
        return [self.server.proc.pid, *children(self.server.proc.pid)]


class SdkTarget:
    """The bare SDK: an Agent on the offline model, a SQLiteSession per conversation."""

    def __init__(self, name: str, root: Path, n: int, *, streamed: bool) -> None:
        from agents import Agent, RunConfig, SQLiteSession
        from agents.memory import SessionSettings

        from app.assistant.offline_model import OfflineModel
        from app.assistant.todo import INSTRUCTIONS

        self.name, self.streamed = name, streamed
        self.agent = Agent(name="Threadkeeper", instructions=INSTRUCTIONS, model=OfflineModel())
        # The service's settings, for a like-for-like turn: 100-item window, no tracing.
        self.config = RunConfig(workflow_name="bench", tracing_disabled=True)
        root.mkdir(parents=True, exist_ok=True)
        window = SessionSettings(limit=100)
        self.sessions = [
            SQLiteSession(f"c{i}", root / f"c{i}.db", session_settings=window) for i in range(n)
        ]

    async def start(self) -> None:
        pass

    async def turn(self, i: int, text: str) -> str | None:
        from agents import Runner

        session = self.sessions[i]
        if self.streamed:
            result = Runner.run_streamed(self.agent, text, session=session, run_config=self.config)
            async for _ in result.stream_events():
                pass
        else:
            result = await Runner.run(self.agent, text, session=session, run_config=self.config)
        return None if result.final_output else "empty reply"

    def pids(self) -> list[int]:
        return []

    async def aclose(self) -> None:
        for session in self.sessions:
            session.close()


async def _measure(targets: list[Any], clients: int, rounds: int, per_round: int, seq: int):
    seq_lat: dict[str, list[float]] = {t.name: [] for t in targets}
    loaded: dict[str, list[dict[str, Any]]] = {t.name: [] for t in targets}
    peaks: dict[str, int] = {}
    for t in targets:  # warm-up: every client's first turn (imports, pools, files)
        await run_batch(t, range(clients + 1), 1, 0)
    sequential = [t for t in targets if t.name != "svc-2w"]
    for k in range(seq):  # one client alone, one turn at a time, alternating A B A B
        for t in rotated(sequential, k):
            start = time.perf_counter()
            await t.turn(clients, text_for(clients, 1 + k))
            seq_lat[t.name].append(time.perf_counter() - start)
    for r in range(rounds):
        for t in rotated(targets, r):
            with FdSampler(t.pids) as sampler:
                loaded[t.name].append(
                    await run_batch(t, range(clients), per_round, 1 + r * per_round)
                )
            if sampler.peak is not None:
                peaks[t.name] = max(peaks.get(t.name, 0), sampler.peak)
    return seq_lat, loaded, peaks


def w7(root: Path, database: Database, *, clients: int, rounds: int, per_round: int, seq: int):
    """Run the servers and the bare SDK side by side and compare them."""
    from app.auth import TokenService
    from app.config import load_settings

    secret = secrets.token_urlsafe(48)
    settings = load_settings(AUTH_JWT_SECRET=secret, DATA_DIR=root, DATABASE_URL=database.url)
    tokens = TokenService.from_settings(settings)
    run = secrets.token_hex(4)
    with ExitStack() as stack:
        servers = {}
        for w in (1, 2):
            server = running_server(w, root / f"svc{w}", database.url, secret)
            servers[w] = stack.enter_context(server)

        async def main() -> tuple:
            targets: list[Any] = [
                HttpTarget(
                    f"svc-{w}w",
                    server,
                    [tokens.issue(f"bench-{run}-{w}-{i}") for i in range(clients + 1)],
                )
                for w, server in servers.items()
            ]
            targets.append(SdkTarget("sdk", root / "sdk", clients + 1, streamed=False))
            targets.append(SdkTarget("sdk-st", root / "sdk-st", clients + 1, streamed=True))
            try:
                for t in targets:
                    await t.start()
                return await _measure(targets, clients, rounds, per_round, seq)
            finally:
                for t in targets:
                    await t.aclose()

        seq_lat, loaded, peaks = asyncio.run(main())
    return _rows(seq_lat, loaded, peaks, clients)


def _rows(seq_lat: dict, loaded: dict, peaks: dict, clients: int) -> tuple[list[Row], dict]:
    rows: list[Row] = []
    base = summarize(seq_lat["sdk"])
    for name, samples in seq_lat.items():
        if not samples:
            continue
        s = summarize(samples)
        row = Row("7", "1 client, sequential turns", name, s["median_ms"], s["p95_ms"])
        if name != "sdk":
            row.ratio, row.ratio_of = ratio(s["median_ms"], base["median_ms"]), "median/sdk"
        if name == "svc-1w":
            row.target, row.met = "<= 1.5x sdk", bool(row.ratio and row.ratio <= 1.5)
            row.note = "service: HTTP + auth + PostgreSQL log + SSE + T; sdk: Runner.run only"
        rows.append(row)
    thru = {}
    for name, batches in loaded.items():
        row = loaded_row("7", clients, name, batches)
        thru[name] = row.throughput
        if name in peaks:
            row.value += f", fds {peaks[name]}"
        rows.append(row)
    for row in rows:
        if row.throughput is not None and row.system != "sdk":
            row.ratio, row.ratio_of = ratio(thru[row.system], thru["sdk"]), "thru/sdk"
    raw = {
        "clients": clients,
        "sequential_ms": {k: raw_ms(v) for k, v in seq_lat.items()},
        "loaded": raw_batches(loaded),
        "loaded_p99_ms": {
            k: percentile([x for b in v for x in b["latencies"]], 99) * 1000
            for k, v in loaded.items()
        },
        "fd_peaks_per_process": peaks,
    }
    return rows, raw
