"""Workload 8: a ChatKit turn (`POST /chatkit`, threads.add_user_message) against the same
turn over REST (`POST /api/threads/{id}/messages`), on one server.

Both run the same turn service on the offline model, so the difference is the front end:
ChatKit's request parsing and routing, its store's reads (the thread, the user item written
with the message), the event translation and its larger frames, and the pump that sends
keep-alives. One client alone measures a turn's cost; concurrent clients the throughput.
The two sides alternate (rotated order) in every repetition, each with its own threads.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from pathlib import Path
from typing import Any

import httpx

from bench.env import Database
from bench.report import Row
from bench.server import running_server, streamed_turn
from bench.stats import ratio, raw_ms, rotated, summarize
from bench.turn_batches import ClientThreads, loaded_row, raw_batches, run_batch, text_for


class Front(ClientThreads):
    """One front end of the server (`rest` or `chatkit`), named for the way it takes turns."""

    async def turn(self, i: int, text: str) -> str | None:
        if self.name == "rest":
            return await streamed_turn(self.clients[i], self.threads[i], text)
        return await chatkit_turn(self.clients[i], self.threads[i], text)


async def chatkit_turn(client: httpx.AsyncClient, thread_id: str, text: str) -> str | None:
    """A ChatKit `threads.add_user_message`, read to the end of its stream.

    Returns:
        None when the reply item was done; otherwise what went wrong.
    """
    from chatkit.types import (
        InferenceOptions,
        ThreadAddUserMessageParams,
        ThreadsAddUserMessageReq,
        UserMessageInput,
        UserMessageTextContent,
    )

    message = UserMessageInput(
        content=[UserMessageTextContent(text=text)],
        attachments=[],
        inference_options=InferenceOptions(),
    )
    request = ThreadsAddUserMessageReq(
        params=ThreadAddUserMessageParams(thread_id=thread_id, input=message)
    )
    outcome = "stream ended without the reply"
    async with client.stream(
        "POST",
        "/chatkit",
        content=request.model_dump_json(),
        headers={"content-type": "application/json"},
    ) as response:
        if response.status_code != 200:
            return f"HTTP {response.status_code}"
        async for line in response.aiter_lines():
            if line.startswith('data: {"type":"error"'):
                outcome = f"error event: {line[6:200]}"
            elif line.startswith('data: {"type":"thread.item.done"') and (
                '"type":"assistant_message"' in line
            ):
                outcome = ""
    return outcome or None


async def _measure(fronts: list[Front], clients: int, rounds: int, per_round: int, seq: int):
    sequential: dict[str, list[float]] = {f.name: [] for f in fronts}
    loaded: dict[str, list[dict[str, Any]]] = {f.name: [] for f in fronts}
    for front in fronts:  # warm-up: every client's first turn (imports, pools, files)
        await run_batch(front, range(clients + 1), 1, 0)
    for k in range(seq):  # one client alone, one turn at a time, alternating
        for front in rotated(fronts, k):
            start = time.perf_counter()
            await front.turn(clients, text_for(clients, 1 + k))
            sequential[front.name].append(time.perf_counter() - start)
    for r in range(rounds):
        for front in rotated(fronts, r):
            loaded[front.name].append(
                await run_batch(front, range(clients), per_round, 1 + seq + r * per_round)
            )
    return sequential, loaded


def w12(root: Path, database: Database, *, clients: int, rounds: int, per_round: int, seq: int):
    """One server with one worker; REST and ChatKit turns interleaved."""
    from app.auth import TokenService
    from app.config import load_settings

    secret = secrets.token_urlsafe(48)
    settings = load_settings(AUTH_JWT_SECRET=secret, DATA_DIR=root, DATABASE_URL=database.url)
    tokens = TokenService.from_settings(settings)
    run = secrets.token_hex(4)
    with running_server(1, root / "w12", database.url, secret) as server:

        async def main() -> tuple:
            fronts = [
                Front(
                    name,
                    server,
                    [tokens.issue(f"w12-{run}-{name}-{i}") for i in range(clients + 1)],
                )
                for name in ("rest", "chatkit")
            ]
            try:
                for front in fronts:
                    await front.start()
                return await _measure(fronts, clients, rounds, per_round, seq)
            finally:
                for front in fronts:
                    await front.aclose()

        sequential, loaded = asyncio.run(main())
    return _rows(sequential, loaded, clients)


def _rows(sequential: dict, loaded: dict, clients: int) -> tuple[list[Row], dict]:
    rows: list[Row] = []
    base = summarize(sequential["rest"])
    for name, samples in sequential.items():
        s = summarize(samples)
        row = Row("12", "1 client, sequential turns", name, s["median_ms"], s["p95_ms"])
        if name != "rest":
            row.ratio, row.ratio_of = ratio(s["median_ms"], base["median_ms"]), "median/rest"
        rows.append(row)
    thru: dict[str, float] = {}
    for name, batches in loaded.items():
        row = loaded_row("12", clients, name, batches)
        thru[name] = row.throughput
        if name != "rest":
            row.ratio, row.ratio_of = ratio(thru[name], thru["rest"]), "thru/rest"
        rows.append(row)
    raw = {
        "clients": clients,
        "sequential_ms": {k: raw_ms(v) for k, v in sequential.items()},
        "loaded": raw_batches(loaded),
    }
    return rows, raw
