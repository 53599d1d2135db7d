"""Drill 1: load. 32 concurrent clients x 20 streamed turns over 2 uvicorn workers.

No errors; PostgreSQL holds exactly the expected log (each thread 40 messages, user/assistant
alternating, the offline model's exact replies); every memory file matches its log and the
bookkeeping mirrored on the thread row.
"""

from __future__ import annotations

import asyncio
import time
import uuid

import httpx
import pytest

from tests.drills.conftest import ServerFactory
from tests.drills.harness import bearer, report
from tests.drills.stores import Log, ThreadRef, memory_path, read_memory, user_items
from tests.drills.turns import TurnOutcome, client_for, create_thread, latency_summary, stream_turn

CLIENTS = 32
TURNS = 20
WORKERS = 2
LOAD_LIMIT_SECONDS = 150.0


def script(client_no: int) -> list[tuple[str, str]]:
    """(message, the offline model's exact reply) for one client's turns."""
    turns: list[tuple[str, str]] = []
    tasks: list[str] = []
    facts: list[str] = []
    for j in range(TURNS - 1):
        n = f"{client_no}x{j}"
        if j % 3 == 0:
            facts.append(f"that k is {n}")
            turns.append((f"remember that k is {n}", f"Got it \u2014 I'll remember that k is {n}."))
        elif j % 3 == 1:
            tasks.append(f"t{n}")
            turns.append((f"add task t{n}", f'Added "t{n}" to your tasks.'))
        else:
            listing = "\n".join(f"{i}. [ ] {title}" for i, title in enumerate(tasks, start=1))
            turns.append(("list tasks", f"Your tasks:\n{listing}"))
    # The last turn is answered only from memory: recall works exactly when memory works.
    turns.append(
        ("what did I ask you to remember?", f"You asked me to remember: {'; '.join(facts)}.")
    )
    return turns


async def run_client(
    http: httpx.AsyncClient, client_no: int, run: str
) -> tuple[ThreadRef, list[TurnOutcome]]:
    subject = f"load-{run}-{client_no}"
    headers = bearer(subject)
    thread_id = await create_thread(http, headers, f"load {client_no}")
    outcomes = []
    for text, _ in script(client_no):
        outcomes.append(await stream_turn(http, thread_id, text, headers))
    return ThreadRef(thread_id, subject, headers), outcomes


def check_thread(
    log: Log, session_dir, ref: ThreadRef, expected: list[tuple[str, str]]
) -> list[str]:
    problems = []
    messages = log.messages(ref.thread_id)
    got = [(m["role"], m["content"]) for m in messages]
    want = [pair for text, reply in expected for pair in (("user", text), ("assistant", reply))]
    if got != want:
        diff = next((i for i, (g, w) in enumerate(zip(got, want, strict=False)) if g != w), None)
        problems.append(
            f"thread {ref.thread_id}: log has {len(got)} messages, expected {len(want)}; "
            f"first difference at {diff}: {got[diff] if diff is not None else None!r} "
            f"vs {want[diff] if diff is not None else None!r}"
        )
    row = log.thread(ref.thread_id)
    if row["message_count"] != len(want) or row["active_turn_id"] is not None:
        problems.append(f"thread {ref.thread_id}: bookkeeping {row}")
    path = memory_path(session_dir, log.user_id(ref.subject), ref.thread_id)
    if not path.exists():
        return [*problems, f"thread {ref.thread_id}: no memory file at {path}"]
    items = read_memory(path)
    in_log = [str(m["content"]) for m in messages if m["role"] == "user"]
    if user_items(items) != in_log:
        problems.append(f"thread {ref.thread_id}: memory users {user_items(items)} != {in_log}")
    if row["memory_item_count"] != len(items) or row["memory_state"] != "active":
        problems.append(
            f"thread {ref.thread_id}: memory has {len(items)} items, the row says "
            f"{row['memory_item_count']} ({row['memory_state']})"
        )
    return problems


class TestLoad:
    @pytest.mark.drill
    async def test_concurrent_streamed_turns_keep_both_stores_exact(
        self, server_factory: ServerFactory, drill_database: str, record_property
    ) -> None:
        server = server_factory(workers=WORKERS)
        startup = server.start()
        run = uuid.uuid4().hex[:8]

        began = time.perf_counter()
        async with client_for(server.base_url) as http, asyncio.timeout(LOAD_LIMIT_SECONDS):
            results = await asyncio.gather(*(run_client(http, i, run) for i in range(CLIENTS)))
        wall = time.perf_counter() - began
        server.stop()

        outcomes = [o for _, client_outcomes in results for o in client_outcomes]
        failed = [o.describe() for o in outcomes if not o.ok]
        wrong = [
            f"{o.text!r} -> {o.reply!r}, expected {reply!r}"
            for i, (_, client_outcomes) in enumerate(results)
            for o, (_, reply) in zip(client_outcomes, script(i), strict=True)
            if o.ok and o.reply != reply
        ]
        latencies = [o.seconds for o in outcomes if o.ok]
        figures = (
            f"load drill: {CLIENTS} clients x {TURNS} turns over {WORKERS} workers: "
            f"{len(outcomes)} turns, {len(failed)} failed, {len(wrong)} wrong replies, "
            f"{len(outcomes) / wall:.1f} turns/s in {wall:.1f} s; latency "
            f"{latency_summary(latencies)}; server ready in {startup:.1f} s"
        )
        report(record_property, "load_figures", figures)

        log = Log(drill_database)
        store_problems = [
            problem
            for i, (ref, _) in enumerate(results)
            for problem in check_thread(log, server.session_dir, ref, script(i))
        ]
        assert not failed, f"{len(failed)} turns failed, e.g. {failed[:5]}\n{server.log_tail()}"
        assert not wrong, f"{len(wrong)} wrong replies, e.g. {wrong[:5]}"
        assert not store_problems, f"{len(store_problems)} problems: {store_problems[:5]}"
