"""Event-loop lag of a running worker while its maintenance jobs sweep 10,000 sessions.

The jobs run inside the worker (the scheduler, or the admin API as here), on the same loop
that serves every stream, so whatever a job does on the loop without yielding delays every
reply's next delta. The seed is W6's (10,000 threads, half idle for 30 days, a 6-item memory
file each; a tenth marked over a cap lowered to 4); the server then runs `prune`, `vacuum`
and `cleanup` one after the other through `POST /api/admin/jobs/{name}/run`, and the app's own
loop-lag histogram (`threadkeeper_event_loop_lag_seconds`) is scraped from `/metrics` around
each job.
"""

from __future__ import annotations

import asyncio
import secrets
import sqlite3
import time
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa

from bench import profiles, progress
from bench.cleanup import _seed
from bench.env import Database
from bench.processes import lag_buckets, lag_p99_ms, lag_text
from bench.report import Row
from bench.server import running_server

JOBS = ("prune", "vacuum", "cleanup")
LAG_TARGET_MS = 5.0
JOB_TIMEOUT_S = 600.0


async def _seed_sessions(root: Path, database: Database, n: int) -> None:
    """W6's seed into the server's memory directory, with n/10 sessions over a cap of 4."""
    from app.db import create_engine, create_sessionmaker
    from app.memory import AgentMemoryStore
    from app.models import MemoryState, Thread

    engine = create_engine(database.url)
    db = create_sessionmaker(engine)
    store = AgentMemoryStore(root / "sessions")
    try:
        await _seed(db, store, n)
        store.close()
        async with db() as session:
            chosen = (
                await session.execute(
                    sa.select(Thread.id, Thread.user_id)
                    .where(Thread.memory_state == MemoryState.ACTIVE)
                    .order_by(Thread.last_activity_at.desc())  # not the ones cleanup deletes
                    .limit(n // 10)
                )
            ).all()
            for thread_id, user_id in chosen:  # copies of one template: own session ids
                conn = sqlite3.connect(store.path_for(user_id, thread_id))
                with conn:
                    for table in ("agent_sessions", "agent_messages"):
                        conn.execute(f"UPDATE {table} SET session_id = ?", (str(thread_id),))
                conn.close()
            await session.execute(sa.update(Thread).values(memory_item_count=3))
            ids = [thread_id for thread_id, _ in chosen]
            await session.execute(
                sa.update(Thread).where(Thread.id.in_(ids)).values(memory_item_count=6)
            )
            await session.commit()
    finally:
        await engine.dispose()


def job_lag(root: Path, database: Database, n: int) -> tuple[list[Row], dict[str, Any]]:
    """Seed, start one worker, run each job through the admin API; lag p99 per job."""
    from app.auth import TokenService
    from app.config import load_settings

    data = root / "jobs-svc"
    progress.phase(f"seeding {n:,} sessions")
    began = time.perf_counter()
    asyncio.run(_seed_sessions(data, database, n))
    seed_s = time.perf_counter() - began
    secret = secrets.token_urlsafe(48)
    settings = load_settings(AUTH_JWT_SECRET=secret, DATA_DIR=data, DATABASE_URL=database.url)
    admin = TokenService.from_settings(settings).issue("bench-admin", admin=True)
    extra = {"AGENT_SESSION_MAX_MESSAGES": "4", "AGENT_SESSION_RETENTION_DAYS": "7"}
    runs: dict[str, Any] = {}
    profiled: dict[str, Any] = {}
    with running_server(1, data, database.url, secret, extra) as server:
        headers = {"Authorization": f"Bearer {admin}"}
        progress.phase("jobs over the sessions", total=len(JOBS))
        for name in JOBS:
            before = lag_buckets(server.url)
            start = time.perf_counter()
            with profiles.recording(server.proc.pid, f"w9j-{name}", profiled):
                response = httpx.post(
                    f"{server.url}/api/admin/jobs/{name}/run",
                    headers=headers,
                    timeout=JOB_TIMEOUT_S,
                )
            seconds = time.perf_counter() - start
            lag_ms, probes = lag_p99_ms(before, lag_buckets(server.url))
            body = response.json() if response.status_code == 200 else response.text[:300]
            runs[name] = {"s": seconds, "lag_p99_ms": lag_ms, "probes": probes, "run": body}
            progress.advance()
    return _rows(runs, n), {"sessions": n, "seed_s": seed_s, "jobs": runs, "profiles": profiled}


def _rows(runs: dict[str, Any], n: int) -> list[Row]:
    rows = []
    for name, run in runs.items():
        body = run["run"]
        result = (
            f"{body['status']} {body['counts']} {body['error'] or ''}"
            if isinstance(body, dict)
            else body
        )
        row = Row("9", f"{name} job over {n:,}: loop lag p99", "svc")
        row.median_ms = run["s"] * 1000
        row.value = f"{lag_text(run['lag_p99_ms'])} ({run['probes']} probes)"
        row.target = f"<= {LAG_TARGET_MS:.0f} ms"
        row.met = run["lag_p99_ms"] <= LAG_TARGET_MS
        row.note = f"job took {run['s']:.1f} s (the median column): {result}"[:300]
        rows.append(row)
    return rows
