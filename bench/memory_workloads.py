"""Workloads 1, 2 and 5: single-conversation latencies of the memory designs.

Each repetition runs every system once, in a rotated order, so machine noise spreads evenly.
"""

from __future__ import annotations

import random
import sqlite3
import time
import uuid
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

from agents.memory import SessionSettings

from bench import items
from bench.report import Row
from bench.stats import ratio, raw_ms, rotated, summarize
from bench.systems import Conv, MemorySystem, StoreSystem, build, new_conv, run_turn

READ_WINDOW = SessionSettings(limit=100)  # the service's AGENT_SESSION_READ_LIMIT default
W1_ITEMS = 200
W1_OTHER_CONVERSATIONS = 8  # A's shared file holds other conversations too
W2_HISTORY = 40
W5_ITEMS, W5_KEEP = 1_000, 200
HELD = "T*"  # T's get_items inside an already open memory: what the open costs, for reference


async def _setup(names: list[str], root: Path, db_url: str | None, settings: Any) -> dict:
    systems: dict[str, MemorySystem] = {}
    for name in names:
        system = build(name, root, db_url, settings)
        await system.setup()
        systems[name] = system
    return systems


async def _fill(system: MemorySystem, conv: Conv, batch: list[items.Item]) -> None:
    async with system.turn(conv) as session:
        await session.add_items(batch)  # type: ignore[arg-type]


async def _timed_get(system: MemorySystem, conv: Conv, limit: int | None) -> tuple[float, int]:
    start = time.perf_counter()
    async with system.turn(conv) as session:
        got = await session.get_items(limit)
    return time.perf_counter() - start, len(got)


async def w1_get_items(names: list[str], root: Path, db_url: str | None, reps: int) -> tuple:
    """get_items() on a 200-item history and get_items(limit=20): median and p95."""
    rng = random.Random(1)
    systems = await _setup(names, root / "w1", db_url, None)
    convs = {name: new_conv() for name in names}
    if "T" in systems:  # its own conversation: an open memory holds the file's lock
        convs[HELD] = new_conv()
        await _fill(systems["T"], convs[HELD], items.history(rng, W1_ITEMS))
    for name, system in systems.items():
        await _fill(system, convs[name], items.history(rng, W1_ITEMS))
        if name in ("A", "C"):  # shared stores: other conversations live alongside
            for _ in range(W1_OTHER_CONVERSATIONS):
                await _fill(system, new_conv(), items.history(rng, W1_ITEMS))
    samples: dict[str, dict[str, list[float]]] = {"all": {}, "limit20": {}}
    errors: list[str] = []
    order = [*names, HELD] if "T" in systems else list(names)
    try:
        async with AsyncExitStack() as stack:
            held = None
            if "T" in systems:
                held = await stack.enter_async_context(systems["T"].turn(convs[HELD]))
            for rep in range(reps + 1):  # repetition 0 warms every path up, is discarded
                for name in rotated(order, rep):
                    for key, limit in (("all", None), ("limit20", 20)):
                        if name == HELD:
                            start = time.perf_counter()
                            got = len(await held.get_items(limit))  # type: ignore[union-attr]
                            elapsed = time.perf_counter() - start
                        else:
                            elapsed, got = await _timed_get(systems[name], convs[name], limit)
                        if got != (limit or W1_ITEMS):
                            errors.append(f"{name} {key}: {got} items")
                        if rep:
                            samples[key].setdefault(name, []).append(elapsed)
    finally:
        for system in systems.values():
            await system.aclose()
    rows = []
    for key, label in (("all", "get_items() 200 items"), ("limit20", "get_items(limit=20)")):
        base = summarize(samples[key].get("B", []))
        for name in order:
            s = summarize(samples[key][name])
            row = Row("1", label, name, s["median_ms"], s["p95_ms"])
            if name != "B" and "B" in samples[key]:
                row.ratio, row.ratio_of = ratio(s["p95_ms"], base["p95_ms"]), "p95/B"
            if name == "T":
                row.target, row.met = "p95 <= 0.5x B", bool(row.ratio and row.ratio <= 0.5)
            if name == "T" and key == "all":
                row.note = "T timed as open + get_items + close (the service opens per turn)"
            if name == HELD and key == "all":
                row.note = "T's get_items inside an already open memory; reference, no target"
            rows.append(row)
    raw = {k: {n: raw_ms(v) for n, v in d.items()} for k, d in samples.items()}
    return rows, {"samples_ms": raw, "errors": errors, "reps": reps}


async def w2_turn_writes(names: list[str], root: Path, db_url: str | None, reps: int) -> tuple:
    """One turn's memory traffic as the runner makes it (read + add_items per step)."""
    rng = random.Random(2)
    systems = await _setup(names, root / "w2", db_url, READ_WINDOW)
    convs = {name: new_conv() for name in names}
    for name, system in systems.items():
        await _fill(system, convs[name], items.history(rng, W2_HISTORY))
    samples: dict[str, dict[str, list[float]]] = {"plain": {}, "tool": {}}
    try:
        for rep in range(reps + 1):
            for name in rotated(names, rep):
                for kind in ("plain", "tool"):
                    batches = items.turn(rng, tool=kind == "tool")
                    start = time.perf_counter()
                    await run_turn(systems[name], convs[name], batches)
                    if rep:
                        samples[kind].setdefault(name, []).append(time.perf_counter() - start)
    finally:
        for system in systems.values():
            await system.aclose()
    rows = []
    labels = {"plain": "plain turn: read + 2 adds", "tool": "tool turn: read + 3 adds"}
    for kind, label in labels.items():
        base = summarize(samples[kind].get("B", []))
        for name in names:
            s = summarize(samples[kind][name])
            row = Row("2", label, name, s["median_ms"], s["p95_ms"])
            if name != "B" and "B" in names:
                row.ratio, row.ratio_of = ratio(s["median_ms"], base["median_ms"]), "median/B"
            if name == "T" and kind == "plain":
                row.note = "T includes opening and closing the memory (one open per turn)"
            rows.append(row)
    raw = {k: {n: raw_ms(v) for n, v in d.items()} for k, d in samples.items()}
    return rows, {"samples_ms": raw, "reps": reps, "history_items": W2_HISTORY}


def _standin_prune(path: Path, session_id: str, keep: int) -> float:
    """Turn-aligned prune in one SQLite transaction: keep the newest `keep` items, cut at a
    user message so no tool output loses its call. Returns the seconds the transaction took.
    """
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA busy_timeout = 2000")
        conn.execute("PRAGMA synchronous = NORMAL")
        start = time.perf_counter()
        conn.execute("BEGIN IMMEDIATE")
        (cut,) = conn.execute(
            "SELECT min(id) FROM (SELECT id, message_data FROM agent_messages "
            "WHERE session_id = ? ORDER BY id DESC LIMIT ?) "
            "WHERE json_extract(message_data, '$.role') = 'user' "
            "AND json_extract(message_data, '$.type') IS NULL",
            (session_id, keep),
        ).fetchone()
        conn.execute(
            "DELETE FROM agent_messages WHERE session_id = ? AND id < ?", (session_id, cut)
        )
        conn.execute("COMMIT")
        return time.perf_counter() - start
    finally:
        conn.close()


async def w5_prune(root: Path, reps: int) -> tuple:
    """Prune 1,000 items to 200, turn-aligned, in one transaction (T only)."""
    rng = random.Random(5)
    system = StoreSystem(root / "w5")
    history = items.history(rng, W5_ITEMS)
    samples: list[float] = []
    errors: list[str] = []
    real = None
    for _ in range(reps):
        user_id, conversation_id = uuid.uuid4(), uuid.uuid4()
        async with system.store.open(user_id, conversation_id) as memory:
            await memory.add_items(history)  # type: ignore[arg-type]
            real = hasattr(memory, "prune")
            if real:
                start = time.perf_counter()
                await memory.prune(W5_KEEP)  # type: ignore[attr-defined]
                samples.append(time.perf_counter() - start)
        if not real:
            path = system.store.path_for(user_id, conversation_id)
            samples.append(_standin_prune(path, str(conversation_id), W5_KEEP))
        async with system.store.open(user_id, conversation_id) as memory:
            kept = await memory.get_items(limit=10**6)
        if not kept or len(kept) > W5_KEEP or not items.is_user(kept[0]):
            errors.append(f"kept {len(kept)} items, first {kept[0] if kept else None}")
        await system.store.delete(user_id, conversation_id)
    s = summarize(samples)
    label = "T" if real else "T~"
    row = Row("5", "prune 1,000 -> 200 items", label, s["median_ms"], s["p95_ms"])
    row.target, row.met = "p95 <= 5 ms, 1 txn", bool(s["p95_ms"] <= 5 and not errors)
    if not real:
        row.note = (
            "STAND-IN: the store has no prune() yet; measured one BEGIN IMMEDIATE transaction "
            "(find the turn-aligned cut with json_extract, DELETE ... WHERE id < ?) on the same "
            "file over a separate connection"
        )
    raw = {"samples_ms": raw_ms(samples), "errors": errors, "real_prune": real, "reps": reps}
    return [row], raw
