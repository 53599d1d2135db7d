"""Workload 10: users' data at W10's size (100,000 threads, 2,000,000 messages).

On a database of its own, seeded at the revision before full-text search (see `w10_seed`):

- the search migration on those rows (how long its tables are locked), then the rebuild of
  every vector by the `reindex-search` job (rows per second);
- search latency through the real app (HTTP in process, auth, JSON) for queries from rare
  words to words in nearly every message, for random users of 100 threads x 20 messages;
- the account export of a user with 1,000 threads (20,000 messages): bytes and messages per
  second, and the longest the event loop was held meanwhile;
- the erasure of that user (1,000 threads, their memory files): time and loop hold.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import shutil
import time
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from bench import progress
from bench.env import UNLIMITED, Database
from bench.report import Row
from bench.stats import summarize
from bench.w10_growth import growth, growth_rows
from bench.w10_seed import ERASER, Shape, seed, user_id, word

SEARCH_REVISION = "0010_search"
# (label, query): word ranks from the Zipf-like vocabulary; rank 1 is in most messages.
QUERIES = (
    ("rare word", [word(6_000), word(7_000), word(5_500)]),
    ("mid word", [word(300), word(400), word(500)]),
    ("common word", [word(1), word(2), word(3)]),
    ("two words (and)", [f"{word(20)} {word(40)}", f"{word(30)} {word(60)}"]),
    ("phrase", [f'"{word(1)} {word(2)}"', f'"{word(2)} {word(3)}"']),
)


class LoopLag:
    """The longest the event loop was held (a 1 ms ticker's lateness) while it runs."""

    def __init__(self) -> None:
        self.max_s = 0.0
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def _tick(self) -> None:
        while not self._stop.is_set():
            start = time.perf_counter()
            await asyncio.sleep(0.001)
            self.max_s = max(self.max_s, time.perf_counter() - start - 0.001)

    async def __aenter__(self) -> LoopLag:
        self._task = asyncio.create_task(self._tick())
        return self

    async def __aexit__(self, *_: object) -> None:
        self._stop.set()
        assert self._task is not None
        await self._task


async def w10(root: Path, database: Database, shape: Shape, search_reps: int) -> tuple:
    """Seed, migrate, rebuild, search, export and erase; rows and raw figures."""
    from app.embedded_db import drop_database

    admin = make_url(database.conninfo).set(database="postgres").render_as_string(False)
    name = f"{make_url(database.url).database}_w10"  # beside the run's scratch database
    drop_database(admin, name, recreate=True)
    drop_database(admin, f"{name}e", recreate=True)  # the same user alone: the growth baseline
    url = make_url(database.url).set(database=name).render_as_string(False)
    conninfo = make_url(database.conninfo).set(database=name).render_as_string(False)
    empty_url = make_url(url).set(database=f"{name}e").render_as_string(False)
    empty_conninfo = make_url(conninfo).set(database=f"{name}e").render_as_string(False)
    alone = Shape(
        users=1,
        threads_per_user=shape.threads_per_user,
        messages_per_thread=shape.messages_per_thread,
        eraser_threads=0,
    )
    try:
        progress.phase(f"w10: seed {shape.messages:,} messages, migrate, rebuild vectors")
        facts = await _prepare(url, conninfo, shape)
        progress.phase("w10: the same user alone (growth baseline)")
        await _prepare(empty_url, empty_conninfo, alone)
        progress.phase("w10: growth ratios, interleaved")
        facts["growth"] = await growth(url, empty_url, root / "w10", 1, search_reps)
        progress.phase("w10: search, export, erase")
        facts |= await _measure(url, root / "w10", shape, search_reps)
    finally:
        drop_database(admin, name)
        drop_database(admin, f"{name}e")
    return _rows(facts, shape) + growth_rows(facts["growth"], shape.threads), facts


async def _prepare(url: str, conninfo: str, shape: Shape) -> dict[str, Any]:
    """Seed at the revision before search, then time the migration and the rebuild."""
    from alembic.script import ScriptDirectory

    from app import schema
    from app.db import create_engine, create_sessionmaker
    from app.services import search_index

    before = ScriptDirectory.from_config(schema.alembic_config()).get_revision(SEARCH_REVISION)
    engine = create_engine(url)
    try:
        await schema.upgrade(engine, str(before.down_revision))
        start = time.perf_counter()
        await asyncio.to_thread(seed, conninfo, shape)
        seeded = time.perf_counter()
        await schema.upgrade(engine)
        migrated = time.perf_counter()
        counts = await search_index.reindex(create_sessionmaker(engine), "simple")
        rebuilt = time.perf_counter()
        async with engine.connect() as conn:
            await conn.exec_driver_sql("COMMIT")
            await conn.exec_driver_sql("ANALYZE threads, messages")
    finally:
        await engine.dispose()
    return {
        "seed_s": seeded - start,
        "migration_s": migrated - seeded,
        "rebuild_s": rebuilt - migrated,
        "rebuild": counts,
    }


async def _measure(url: str, data_dir: Path, shape: Shape, search_reps: int) -> dict[str, Any]:
    """Search, export and erase through the app, as clients would."""
    import httpx
    from asgi_lifespan import LifespanManager

    from app.auth import TokenService
    from app.config import load_settings
    from app.main import create_app

    settings = load_settings(
        DATABASE_URL=url,
        **UNLIMITED,
        DATA_DIR=data_dir,
        SCHEDULER_ENABLED=False,
        AUTH_JWT_SECRET=uuid.uuid4().hex * 2,
        LOG_LEVEL="WARNING",
    )
    tokens = TokenService.from_settings(settings)
    files = await _memory_files(settings.agent_session_dir, shape)
    app = create_app(settings)
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://w10") as client:

            def auth(n: int) -> dict[str, str]:
                return {"Authorization": f"Bearer {tokens.issue(f'w10-user-{n}')}"}

            async with LoopLag() as idle:  # this machine's floor: nothing but the ticker
                await asyncio.sleep(1.0)
            searches = await _searches(client, auth, shape, search_reps)
            export = await _export(client, auth(ERASER))
            erase = await _erase(client, auth(ERASER))
    return {
        "files": files,
        "idle_loop_lag_max_ms": idle.max_s * 1000,
        "search": searches,
        "export": export,
        "erase": erase,
    }


async def _memory_files(root: Path, shape: Shape) -> int:
    """A memory file for each of the eraser's threads (copies of one), one quarantined."""
    from app.memory import AgentMemoryStore

    store = AgentMemoryStore(root)
    owner = user_id(ERASER)
    template = (owner, uuid.uuid4())
    async with store.open(*template) as memory:
        await memory.add_items([{"role": "user", "content": f"item {i}"} for i in range(20)])
    store.close()
    source = store.path_for(*template)
    for t in range(shape.eraser_threads):
        thread = uuid.UUID(hashlib.md5(f"w10-thread-{t}".encode()).hexdigest())
        shutil.copyfile(source, store.path_for(owner, thread))
    quarantine = root / "_quarantine" / str(owner)
    quarantine.mkdir(parents=True)
    source.rename(quarantine / f"{template[1]}-20260101T000000.db")
    return shape.eraser_threads


async def _searches(client: Any, auth: Any, shape: Shape, reps: int) -> dict[str, Any]:
    rng = random.Random(10)
    samples: dict[str, list[float]] = {label: [] for label, _ in QUERIES}
    samples["page 2 (common word)"] = []
    hits: dict[str, list[int]] = {label: [] for label in samples}
    for _ in range(reps):
        for label, queries in QUERIES:
            headers = auth(rng.randint(1, shape.users))
            params = {"q": rng.choice(queries), "limit": 20}
            start = time.perf_counter()
            response = await client.get("/api/search", params=params, headers=headers)
            samples[label].append(time.perf_counter() - start)
            response.raise_for_status()
            hits[label].append(len(response.json()["data"]))
            if label == "common word" and response.json()["after"]:
                start = time.perf_counter()
                more = await client.get(
                    "/api/search",
                    params={**params, "after": response.json()["after"]},
                    headers=headers,
                )
                samples["page 2 (common word)"].append(time.perf_counter() - start)
                more.raise_for_status()
                hits["page 2 (common word)"].append(len(more.json()["data"]))
    return {
        label: {**summarize(s), "avg_hits": sum(hits[label]) / max(1, len(hits[label]))}
        for label, s in samples.items()
    }


async def _export(client: Any, headers: dict[str, str]) -> dict[str, Any]:
    size = 0
    async with LoopLag() as lag:
        start = time.perf_counter()
        async with client.stream("GET", "/api/me/export", headers=headers) as response:
            response.raise_for_status()
            async for chunk in response.aiter_raw():
                size += len(chunk)
        seconds = time.perf_counter() - start
    return {"seconds": seconds, "bytes": size, "loop_lag_max_ms": lag.max_s * 1000}


async def _erase(client: Any, headers: dict[str, str]) -> dict[str, Any]:
    async with LoopLag() as lag:
        start = time.perf_counter()
        response = await client.delete("/api/me", headers=headers)
        seconds = time.perf_counter() - start
    response.raise_for_status()
    return {"seconds": seconds, "result": response.json(), "loop_lag_max_ms": lag.max_s * 1000}


def _rows(facts: dict[str, Any], shape: Shape) -> list[Row]:
    n, t = shape.messages, shape.threads
    rebuilt = facts["rebuild"]["messages"] + facts["rebuild"]["threads"]
    rows = [
        Row(
            "10",
            f"search migration, {t:,} thr / {n:,} msg",
            "T",
            facts["migration_s"] * 1000,
            value="tables locked meanwhile",
            note=f"seeding took {facts['seed_s']:.0f} s",
        ),
        Row(
            "10",
            "rebuild all vectors (reindex)",
            "T",
            facts["rebuild_s"] * 1000,
            throughput=rebuilt / facts["rebuild_s"],
            value=f"{facts['rebuild']['batches']} batches, online",
            note="throughput in rows/s; includes the VACUUM (ANALYZE) that ends it",
        ),
    ]
    for label, s in facts["search"].items():
        value = f"{s['avg_hits']:.1f} hits/page, n={s['n']}"
        rows.append(Row("10", f"search: {label}", "T", s["median_ms"], s["p95_ms"], value=value))
    return rows + _data_rows(facts, shape)


def _data_rows(facts: dict[str, Any], shape: Shape) -> list[Row]:
    export, erase, idle = facts["export"], facts["erase"], facts["idle_loop_lag_max_ms"]
    seconds = export["seconds"]
    return [
        Row(
            "10",
            f"export {shape.eraser_threads:,} threads",
            "T",
            seconds * 1000,
            throughput=erase["result"]["messages"] / seconds,
            value=f"{export['bytes'] / seconds / 1e6:.1f} MB/s, "
            f"lag {export['loop_lag_max_ms']:.0f}/{idle:.0f} ms",
            note="throughput in messages/s; lag: the longest the event loop was held, "
            "then the same while idle (this machine's floor)",
        ),
        Row(
            "10",
            f"erase user, {shape.eraser_threads:,} threads",
            "T",
            erase["seconds"] * 1000,
            value=f"{erase['result']['memory_files']} files, "
            f"lag {erase['loop_lag_max_ms']:.0f}/{idle:.0f} ms",
        ),
    ]
