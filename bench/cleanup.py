"""Workload 6: 10,000 conversations; stats, then cleanup of the 5,000 least recently used
while a live writer keeps adding items to other conversations in the same event loop.

A loop-lag probe (a timer asking to wake every millisecond, as `app.loop_monitor` does in
the server) runs beside the cleanup and the prune sweep: how late it wakes is how long the
jobs' store operations held the loop.

The writer shares the loop with the cleanup on purpose: the cleanup job runs inside the app
(the scheduler), so every millisecond it holds the loop without yielding is a millisecond a
turn cannot write. Stats and cleanup use the project's own code (`services.sessions.
session_stats`, `scheduler.jobs.cleanup`) when it exists; otherwise a labelled stand-in.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import importlib
import inspect
import random
import shutil
import sqlite3
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from bench import items
from bench.env import Database
from bench.report import Row
from bench.stats import percentile, raw_ms, summarize

RETENTION_DAYS = 7
LIVE_CONVERSATIONS = 8
WRITE_INTERVAL_S = 0.001
CONVERSATIONS_PER_USER = 100
PROBE_INTERVAL_S = 0.001
LOOP_LAG_P99_TARGET_S = 0.005


def _find(module: str, names: tuple[str, ...], needs: tuple[str, ...]) -> Any:
    """The project's function called one of `names` taking `needs`, or None (then: stand-in)."""
    try:
        mod = importlib.import_module(module)
    except ImportError:
        return None
    for name in names:
        fn = getattr(mod, name, None)
        if callable(fn) and set(needs) <= set(inspect.signature(fn).parameters):
            return fn
    return None


class _Writer:
    """Adds one item every millisecond to live conversations, opening memory per write."""

    def __init__(self, store: Any, convs: list[tuple[uuid.UUID, uuid.UUID]]) -> None:
        self.store, self.convs = store, convs
        self.acked = dict.fromkeys(convs, 0)
        self.done: list[float] = []
        self.latencies: list[float] = []
        self.errors: list[str] = []
        rng = random.Random(6)
        self._items = [items.assistant_item(rng) for _ in range(32)]

    async def run(self, stop: asyncio.Event) -> None:
        n = 0
        while not stop.is_set():
            conv = self.convs[n % len(self.convs)]
            start = time.perf_counter()
            try:
                async with self.store.open(*conv) as memory:
                    await memory.add_items([self._items[n % len(self._items)]])
                self.acked[conv] += 1
            except Exception as e:  # a failed write is a result, not a crash
                self.errors.append(f"{type(e).__name__}: {e}")
            end = time.perf_counter()
            self.latencies.append(end - start)
            self.done.append(end)
            n += 1
            await asyncio.sleep(WRITE_INTERVAL_S)

    def stalls(self, start: float, end: float) -> list[float]:
        """How long each write overlapping [start, end] waited past its planned start.

        A write is planned 1 ms after the previous one completed; its stall is the time from
        then to its own completion: its own latency plus any time the loop was held.
        """
        pairs = zip(self.done, self.done[1:], strict=False)
        return [b - a - WRITE_INTERVAL_S for a, b in pairs if b >= start and a <= end]


class _LagProbe:
    """Asks to wake every millisecond; records (when, how late) it woke."""

    def __init__(self) -> None:
        self.samples: list[tuple[float, float]] = []
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            asked = time.perf_counter()
            await asyncio.sleep(PROBE_INTERVAL_S)
            now = time.perf_counter()
            self.samples.append((now, max(0.0, now - asked - PROBE_INTERVAL_S)))

    def lags(self, start: float, end: float) -> list[float]:
        return [lag for at, lag in self.samples if start <= at <= end]


async def _seed(db: Any, store: Any, n: int) -> list[tuple[uuid.UUID, uuid.UUID]]:
    """n conversation rows (half idle for 30+ days) and a memory file for each."""
    from app.models import MemoryState, Thread, User
    from app.models.base import utc_now

    now = utc_now()
    users = [User(subject=f"bench-{uuid.uuid4().hex}") for _ in range(max(1, n // 100))]
    rows = []
    for i in range(n):
        idle = i < n // 2  # the first half are the least recently used
        age = timedelta(days=30, minutes=n - i) if idle else timedelta(seconds=n - i)
        rows.append(
            Thread(
                user_id=users[i % len(users)].id,
                title=f"bench {i}",
                agent="todo",
                last_activity_at=now - age,
                memory_state=MemoryState.ACTIVE,
                memory_item_count=6,
                memory_bytes=24_576,
            )
        )
    async with db() as session:
        await session.execute(sa.insert(User.__table__), [u.model_dump() for u in users])
        await session.execute(sa.insert(Thread.__table__), [c.model_dump() for c in rows])
        await session.commit()
    async with db() as session:
        await session.execute(sa.text("ANALYZE threads"))
    template = (uuid.uuid4(), uuid.uuid4())
    async with store.open(*template) as memory:
        await memory.add_items(items.history(random.Random(7), 6))
    store.close()  # closing the pooled connection folds the WAL in: copies get every item
    live = [(c.user_id, c.id) for c in rows[-LIVE_CONVERSATIONS:]]
    for c in rows[:-LIVE_CONVERSATIONS]:  # copies: only ever deleted, never read
        path = store.path_for(c.user_id, c.id)
        if not path.parent.exists():
            path.parent.mkdir(mode=0o700, parents=True)
        shutil.copyfile(store.path_for(*template), path)
    await store.delete(*template)
    for conv in live:
        async with store.open(*conv) as memory:
            await memory.add_items(items.history(random.Random(8), 4))
    return live


async def _stats(db: Any, reps: int) -> tuple[list[float], bool]:
    real = _find("app.services.memory_records", ("memory_totals",), ("db", "max_items"))
    samples = []
    for _ in range(reps + 1):
        start = time.perf_counter()
        async with db() as session:
            if real is not None:
                await real(session, max_items=200)
            else:
                await session.execute(
                    sa.text(
                        "SELECT count(*), sum(memory_item_count), sum(memory_bytes), "
                        "min(last_activity_at), max(last_activity_at) FROM threads "
                        "WHERE memory_state = 'active'"
                    )
                )
        samples.append(time.perf_counter() - start)
    return samples[1:], real is not None


async def _standin_cleanup(db: Any, store: Any, count: int) -> int:
    async with db() as session:
        victims = (
            await session.execute(
                sa.text(
                    "SELECT user_id, id FROM threads WHERE memory_state = 'active' "
                    "ORDER BY last_activity_at LIMIT :n"
                ),
                {"n": count},
            )
        ).all()
    for user_id, conversation_id in victims:
        await store.delete(user_id, conversation_id)
    async with db() as session:
        await session.execute(
            sa.text(
                "UPDATE threads SET memory_state = 'expired', memory_item_count = 0, "
                "memory_bytes = 0 WHERE id = ANY(:ids)"
            ),
            {"ids": [v[1] for v in victims]},
        )
        await session.commit()
    return len(victims)


async def w6(root: Path, database: Database, n: int, stats_reps: int) -> tuple:
    """Stats over n conversations and cleanup of the n/2 least recently used."""
    from app.config import load_settings
    from app.db import create_engine, create_sessionmaker
    from app.memory import AgentMemoryStore

    settings = load_settings(
        DATABASE_URL=database.url, DATA_DIR=root / "w6", AGENT_SESSION_DIR=root / "w6" / "s"
    )
    engine = create_engine(database.url)
    db = create_sessionmaker(engine)
    store = AgentMemoryStore(settings.agent_session_dir)
    try:
        seed_start = time.perf_counter()
        live = await _seed(db, store, n)
        seed_s = time.perf_counter() - seed_start
        gc.collect()  # the seed's garbage is ours: its collection must not stall the writer
        stats_samples, real_stats = await _stats(db, stats_reps)
        # Resolved (imported) before the writer starts: an import would stall it, not the job.
        job = _find("app.scheduler.jobs", ("cleanup_sessions", "cleanup"), ("older_than_days",))
        ctx = None
        if job is not None:
            from app.scheduler.context import JobContext

            ctx = JobContext(sessionmaker=db, memory_store=store, settings=settings)
        writer = _Writer(store, live)
        stop = asyncio.Event()
        probe = _LagProbe()
        probe.start()
        writing = asyncio.create_task(writer.run(stop))
        await asyncio.sleep(0.5)  # the writer alone: the stall floor of this machine
        idle_end = start = time.perf_counter()
        if job is not None:
            outcome = await job(ctx, older_than_days=RETENTION_DAYS)
            deleted = int(outcome.get("deleted", -1))
        else:
            deleted = await _standin_cleanup(db, store, n // 2)
        end = time.perf_counter()
        await asyncio.sleep(0.1)
        stop.set()
        await writing
        lost = 0
        for conv in live:
            async with store.open(*conv) as memory:
                lost += max(0, 4 + writer.acked[conv] - len(await memory.get_items(limit=10**9)))
        remaining = sum(1 for _ in store.iter_files())
        sweep = await _prune_sweep(db, store, settings, over=n // 10) if job is not None else {}
        await probe.stop()
    finally:
        await engine.dispose()
    facts = {
        "conversations": n,
        "seed_s": seed_s,
        "real_stats": real_stats,
        "real_cleanup_job": job is not None,
        "cleanup_ms": (end - start) * 1000,
        "deleted": deleted,
        "files_remaining": remaining,
        "lost_writes": lost,
        "prune_sweep": sweep,
        "loop_lag_cleanup": probe.lags(start, end),
        "loop_lag_sweep": probe.lags(*sweep["window"]) if sweep else [],
    }
    return _rows(facts, stats_samples, writer, (idle_end - 0.5, idle_end), (start, end))


async def _prune_sweep(db: Any, store: Any, settings: Any, *, over: int) -> dict[str, Any]:
    """The periodic prune sweep with `over` sessions above a (lowered) cap among the rest.

    The surviving files hold 6 items; the cap drops to 4, and the bookkeeping marks only
    `over` of them as over it, so the sweep finds its candidates in PostgreSQL and rewrites
    exactly those files (turn-aligned prune, WAL checkpoint, bookkeeping).
    """
    from app.models import MemoryState, Thread
    from app.scheduler.context import JobContext
    from app.scheduler.jobs import prune

    async with db() as session:
        chosen = (
            await session.execute(
                sa.select(Thread.id, Thread.user_id)
                .where(Thread.memory_state == MemoryState.ACTIVE)
                .order_by(Thread.last_activity_at)
                .limit(over)
            )
        ).all()
        ids = [conversation_id for conversation_id, _ in chosen]
        # The seeded files are copies of one template: give each its own session id (setup).
        for conversation_id, user_id in chosen:
            conn = sqlite3.connect(store.path_for(user_id, conversation_id))
            with conn:
                for table in ("agent_sessions", "agent_messages"):
                    conn.execute(f"UPDATE {table} SET session_id = ?", (str(conversation_id),))
            conn.close()
        await session.execute(sa.update(Thread).values(memory_item_count=3))
        await session.execute(
            sa.update(Thread).where(Thread.id.in_(ids)).values(memory_item_count=6)
        )
        await session.commit()
    lowered = settings.model_copy(update={"AGENT_SESSION_MAX_MESSAGES": 4})
    ctx = JobContext(sessionmaker=db, memory_store=store, settings=lowered)
    start = time.perf_counter()
    totals = await prune(ctx)
    end = time.perf_counter()
    return {"over": over, "ms": (end - start) * 1000, "window": (start, end), **totals}


def _rows(
    facts: dict[str, Any],
    stats_samples: list[float],
    writer: _Writer,
    idle: tuple[float, float],
    busy: tuple[float, float],
) -> tuple[list[Row], dict[str, Any]]:
    n, half, lost = facts["conversations"], facts["conversations"] // 2, facts["lost_writes"]
    idle_stalls, busy_stalls = writer.stalls(*idle), writer.stalls(*busy)
    s = summarize(stats_samples)
    stats_row = Row("6", f"stats over {n:,} conversations", "T", s["median_ms"], s["p95_ms"])
    stats_row.target, stats_row.met = "p95 <= 50 ms", s["p95_ms"] <= 50
    stats_row.note = (
        "app.services.memory_records.memory_totals (one SQL query on the bookkeeping columns)"
        if facts["real_stats"]
        else "STAND-IN: one aggregate SQL query over the conversations bookkeeping columns"
    )
    clean_row = Row("6", f"cleanup {half:,} LRU of {n:,}", "T", facts["cleanup_ms"])
    clean_row.value = f"deleted {facts['deleted']}, left {facts['files_remaining']}"
    clean_row.target = "<= 1 s"
    clean_row.met = (
        facts["cleanup_ms"] <= 1000
        and facts["deleted"] == half
        and facts["files_remaining"] == n - half
    )
    clean_row.note = (
        f"app.scheduler.jobs.cleanup(ctx, older_than_days={RETENTION_DAYS}) called directly"
        if facts["real_cleanup_job"]
        else "STAND-IN: select LRU rows, store.delete() each file, one UPDATE of the rows"
    )
    stall = max(busy_stalls, default=float("nan"))
    g = summarize(busy_stalls)
    writer_row = Row("6", "live writer stall during cleanup", "T", g["median_ms"], g["p95_ms"])
    writer_row.value = f"max {stall * 1000:.1f} ms, lost {lost}"
    writer_row.target = "max <= 10 ms, 0 lost"
    writer_row.met = stall <= 0.010 and lost == 0 and not writer.errors
    writer_row.note = (
        "a write every 1 ms to other conversations (open + add_items + close each, in the "
        "cleanup's event loop); stall = completion - planned start. Without cleanup the max "
        f"stall was {max(idle_stalls, default=0) * 1000:.1f} ms"
    )
    rows = [stats_row, clean_row, writer_row]
    for label, key in (("cleanup", "loop_lag_cleanup"), ("prune sweep", "loop_lag_sweep")):
        if facts[key]:
            rows.append(_lag_row(label, facts[key]))
    raw = {
        **facts,
        "loop_lag_cleanup": raw_ms(facts["loop_lag_cleanup"]),
        "loop_lag_sweep": raw_ms(facts["loop_lag_sweep"]),
        "stats_samples_ms": raw_ms(stats_samples),
        "writer_stalls_during_cleanup_ms": raw_ms(busy_stalls),
        "writer_stalls_idle_ms": raw_ms(idle_stalls),
        "writer_write_p99_ms": percentile(writer.latencies, 99) * 1000,
        "writer_writes": len(writer.latencies),
        "writer_errors": writer.errors[:5],
    }
    sweep = facts.get("prune_sweep") or {}
    if sweep:
        sweep_row = Row(
            "6", f"prune sweep, {sweep['over']:,} over the cap of {n:,}", "T", sweep["ms"]
        )
        sweep_row.value = f"pruned {sweep['pruned']}, checked {sweep['checked']}"
        sweep_row.note = (
            "app.scheduler.jobs.prune(ctx) with the cap lowered below the files' size: "
            "candidates from PostgreSQL, each file pruned, checkpointed and recorded"
        )
        rows.append(sweep_row)
    return rows, raw


def _lag_row(label: str, lags: list[float]) -> Row:
    s = summarize(lags)
    p99 = percentile(lags, 99)
    row = Row("6", f"loop lag during {label}", "T", s["median_ms"], s["p95_ms"])
    row.value = f"p99 {p99 * 1000:.1f} ms, max {max(lags) * 1000:.1f}"
    row.target, row.met = "p99 <= 5 ms", p99 <= LOOP_LAG_P99_TARGET_S
    row.note = "a 1 ms timer in the jobs' event loop (the live writer runs too): how late it woke"
    return row
