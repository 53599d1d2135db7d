"""Workloads 3 and 4: many conversations at once, in 1 and in 4 processes.

Modes are (processes, conversations, turns each): one process is what one uvicorn worker is,
so it runs with 64 and with 500 conversations (more than the pool holds either way); four
processes share 64 among them.

Long-lived worker processes (multiprocessing, spawn) run each system in turn, so process
start-up is paid once and every system meets the same warmed-up interpreters. Each worker
holds a share of the conversations (as a load balancer with sticky threads would) and runs them
concurrently; each turn yields where the model would be called, so turns really overlap. The
parent counts each worker's open descriptors from /proc while the turns run.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import multiprocessing as mp
import os
import random
import shutil
import statistics
import time
import uuid
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from bench import items
from bench.fds import FdSampler, count_fds
from bench.report import Row
from bench.stats import ratio, raw_ms, rotated, summarize
from bench.systems import Conv, build, run_turn

READ_LIMIT = 100


async def _run(conn: Connection, spec: dict[str, Any], db_url: str | None) -> dict[str, Any]:
    from agents.memory import SessionSettings

    system = build(spec["system"], Path(spec["root"]), db_url, SessionSettings(limit=READ_LIMIT))
    await system.setup()
    convs: list[Conv] = [(uuid.UUID(u), uuid.UUID(c)) for u, c in spec["convs"]]
    plans = {
        conv: [
            items.turn(random.Random(f"{spec['seed']}:{conv[1]}:{k}"), tool=items.is_tool_turn(k))
            for k in range(spec["turns"])
        ]
        for conv in convs
    }
    latencies: list[float] = []
    written = dict.fromkeys(convs, 0)
    errors: list[str] = []

    async def converse(conv: Conv) -> None:
        for batches in plans[conv]:
            start = time.perf_counter()
            try:
                written[conv] += await run_turn(system, conv, batches, pause=True)
            except Exception as e:  # counted and reported: errors are a result here
                errors.append(f"{type(e).__name__}: {e}")
            latencies.append(time.perf_counter() - start)

    conn.send(("ready", count_fds_self()))
    if (await asyncio.to_thread(conn.recv))[0] != "go":  # every worker starts together
        await system.aclose()
        raise _Stop
    began = time.monotonic()
    await asyncio.gather(*(converse(conv) for conv in convs))
    ended = time.monotonic()
    lost = 0
    for conv in convs:
        async with system.turn(conv) as session:
            lost += max(0, written[conv] - len(await session.get_items(limit=10**9)))
    await system.aclose()
    return {
        "began": began,
        "ended": ended,
        "latencies": latencies,
        "errors": len(errors),
        "first_errors": errors[:3],
        "lost_items": lost,
        "fds_after": count_fds_self(),
    }


def count_fds_self() -> int | None:
    return count_fds(os.getpid())


class _Stop(Exception):
    """The parent said stop while this worker waited to start."""


def worker_main(conn: Connection, db_url: str | None) -> None:
    """A worker process: run each spec the parent sends until told to stop."""
    while True:
        message = conn.recv()
        if message[0] == "stop":
            return
        try:
            conn.send(("result", asyncio.run(_run(conn, message[1], db_url))))
        except _Stop:
            return
        except Exception as e:
            conn.send(("failed", f"{type(e).__name__}: {e}"))


class WorkerPool:
    """N spawned worker processes, driven over pipes."""

    def __init__(self, n: int, db_url: str | None) -> None:
        ctx = mp.get_context("spawn")
        self.pipes: list[Connection] = []
        self.procs: list[Any] = []
        for _ in range(n):
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=worker_main, args=(child, db_url), daemon=True)
            proc.start()
            self.pipes.append(parent)
            self.procs.append(proc)

    def run(self, specs: list[dict[str, Any]], timeout: float) -> tuple[list[dict], FdSampler]:
        """Run one spec per worker, started together; sample their descriptors meanwhile."""
        pipes = self.pipes[: len(specs)]
        for pipe, spec in zip(pipes, specs, strict=True):
            pipe.send(("run", spec))
        baselines = [self._expect(pipe, "ready", timeout) for pipe in pipes]
        pids = [p.pid for p in self.procs[: len(specs)]]
        with FdSampler(pids) as sampler:
            for pipe in pipes:
                pipe.send(("go",))
            results = [self._expect(pipe, "result", timeout) for pipe in pipes]
        for result, baseline in zip(results, baselines, strict=True):
            result["fds_baseline"] = baseline
        return results, sampler

    @staticmethod
    def _expect(pipe: Connection, kind: str, timeout: float) -> Any:
        if not pipe.poll(timeout):
            raise TimeoutError(f"a worker sent no {kind!r} within {timeout:.0f} s")
        message = pipe.recv()
        if message[0] != kind:
            raise RuntimeError(f"worker failed: {message[1:]}")
        return message[1]

    def close(self) -> None:
        for pipe in self.pipes:
            with contextlib.suppress(OSError):
                pipe.send(("stop",))
        for proc in self.procs:
            proc.join(timeout=10)
            if proc.is_alive():
                proc.terminate()
                proc.join(timeout=5)


def plan_specs(
    system: str, root: Path, procs: int, conversations: int, turns: int, seed: int
) -> list[dict[str, Any]]:
    """Spread fresh conversations over `procs` workers, all sharing one storage root."""
    convs = [(str(uuid.uuid4()), str(uuid.uuid4())) for _ in range(conversations)]
    return [
        {
            "system": system,
            "root": str(root),
            "convs": convs[i::procs],
            "turns": turns,
            "seed": seed,
        }
        for i in range(procs)
    ]


async def _create_tables(db_url: str | None) -> None:
    system = build("C", Path("."), db_url)
    await system.setup()
    await system.aclose()


def _summarize_run(results: list[dict[str, Any]], sampler: FdSampler) -> dict[str, Any]:
    latencies = [x for r in results for x in r["latencies"]]
    wall = max(r["ended"] for r in results) - min(r["began"] for r in results)
    return {
        "turns": len(latencies),
        "wall_s": wall,
        "turns_per_s": len(latencies) / wall if wall > 0 else math.nan,
        "errors": sum(r["errors"] for r in results),
        "first_errors": [e for r in results for e in r["first_errors"]][:3],
        "lost_items": sum(r["lost_items"] for r in results),
        "fd_peak_per_process": sampler.peak,
        "fd_peak_sum": sum(sampler.peaks.values()),
        "fd_baseline_per_process": max((r["fds_baseline"] or 0) for r in results),
        "fd_samples": sampler.samples,
        "latencies": latencies,
    }


Mode = tuple[int, int, int]  # processes, conversations, turns per conversation


def w3_w4(
    names: list[str],
    root: Path,
    db_url: str | None,
    *,
    modes: tuple[Mode, ...],
    reps: int,
    timeout: float = 300.0,
) -> tuple[list[Row], dict[str, Any]]:
    """Turns/s, latency, errors (W3) and peak descriptors (W4), interleaved across systems."""
    combos = [(name, mode) for mode in modes for name in names]
    runs: dict[tuple[str, Mode], list[dict[str, Any]]] = {combo: [] for combo in combos}
    if "C" in names:  # create C's tables once here, not racing in four workers
        asyncio.run(_create_tables(db_url))
    pool = WorkerPool(max(procs for procs, _, _ in modes), db_url)
    try:
        for rep in range(reps):
            for name, (procs, conversations, turns) in rotated(combos, rep):
                run_root = root / f"w3-{name}-{procs}p-{conversations}c-{rep}"
                specs = plan_specs(name, run_root, procs, conversations, turns, seed=rep)
                results, sampler = pool.run(specs, timeout)
                runs[(name, (procs, conversations, turns))].append(_summarize_run(results, sampler))
                shutil.rmtree(run_root, ignore_errors=True)
    finally:
        pool.close()
    return _rows(names, modes, runs)


def _rows(
    names: list[str], modes: tuple[Mode, ...], runs: dict[tuple[str, Mode], list[dict[str, Any]]]
) -> tuple[list[Row], dict[str, Any]]:
    rows3: list[Row] = []
    rows4: list[Row] = []
    raw: dict[str, Any] = {"modes": [list(m) for m in modes], "runs": {}}
    for mode in modes:
        procs, conversations, turns = mode
        tps = {n: statistics.median(r["turns_per_s"] for r in runs[(n, mode)]) for n in names}
        for name in names:
            done = runs[(name, mode)]
            lat = summarize([x for r in done for x in r["latencies"]])
            errors = sum(r["errors"] for r in done)
            lost = sum(r["lost_items"] for r in done)
            row = Row("3", f"{conversations}x{turns} turns, {procs} proc", name)
            row.median_ms, row.p95_ms, row.throughput = lat["median_ms"], lat["p95_ms"], tps[name]
            row.value = f"err {errors}, lost {lost}"
            if name != "A" and "A" in tps:
                row.ratio, row.ratio_of = ratio(tps[name], tps["A"]), "thru/A"
            if name == "T" and "A" in tps:
                row.target = ">= 3x A thru, 0 err"
                row.met = bool(row.ratio and row.ratio >= 3) and errors == 0 and lost == 0
            if errors:
                row.note = "; ".join(e for r in done for e in r["first_errors"])[:300]
            rows3.append(row)
            peak = max(r["fd_peak_per_process"] or 0 for r in done)
            base = max(r["fd_baseline_per_process"] or 0 for r in done)
            fd_row = Row("4", f"peak fds per process, {conversations} conv, {procs} proc", name)
            fd_row.value = f"{peak} (idle {base})"
            if name == "T":
                fd_row.target, fd_row.met = "<= 64 fds", peak <= 64
            rows4.append(fd_row)
            raw["runs"][f"{name}/{procs}p/{conversations}c"] = [
                {**r, "latencies": raw_ms(r["latencies"])} for r in done
            ]
    return rows3 + rows4, raw
