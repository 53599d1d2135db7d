"""Workload 9: many slow turns in flight on one worker, against the bare SDK under the same load.

Conversations arrive at a steady rate (each a new thread and one message) until rate x
`arrive_s` turns are in flight, each reply streaming slowly from the scripted model server
(a first-token delay, then one token per `token_delay`). Two load processes (bench/load_process)
run the arrivals at the same moment: one against a one-worker server, one that is the bare SDK,
each with a model server of its own. What a user feels is the time to first delta and the
gaps between deltas, reported at p99 minus the model's own pacing. Meanwhile a sampler thread
here reads, every `SAMPLE_INTERVAL_S`, the worker's RSS and descriptors (and how many of them
are memory files), the SDK process's, and PostgreSQL's connections to the scratch database; the
server's loop-lag histogram is scraped before and after each phase.
"""

from __future__ import annotations

import os
import secrets
import statistics
import threading
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import psycopg

from bench import profiles, progress
from bench.env import Database
from bench.processes import (
    LoadProcess,
    cpu_seconds,
    keep_logs,
    lag_buckets,
    lag_p99_ms,
    lag_text,
    model_server,
    tree,
)
from bench.realistic_turns import model_env
from bench.report import Row
from bench.server import running_server
from bench.stats import percentile

SAMPLE_INTERVAL_S = 0.5
EXCESS_TARGET_MS = 20.0
LAG_TARGET_MS = 5.0
SATURATED_CORES = 0.85  # one worker is one core: above this it queues
SATURATED_MACHINE = 0.90  # of all cores, busy with anything
DATABASE_POOL_SIZE = 20  # the service's default; the engine allows as many again as overflow
USERS = 100
MEMORY_POOL_FDS = 3 * 16  # AGENT_SESSION_POOL_SIZE idle files, 3 descriptors each (db, wal, shm)


@dataclass(frozen=True)
class W9Plan:
    rates: tuple[int, ...] = (20, 50, 100)
    arrive_s: float = 10.0
    tokens: int = 10
    token_delay_s: float = 1.0
    first_token_delay_s: float = 1.0


def _fds(pids: list[int], under: str | None = None) -> tuple[int, int]:
    """(descriptors, of which files under `under`) of the processes."""
    total = matched = 0
    for pid in pids:
        try:
            names = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        total += len(names)
        if under is None:
            continue
        for name in names:
            try:
                if os.readlink(f"/proc/{pid}/fd/{name}").startswith(under):
                    matched += 1
            except OSError:
                continue
    return total, matched


def _rss(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            total += psutil.Process(pid).memory_info().rss
        except psutil.Error:
            continue
    return total


class Sampler(threading.Thread):
    """Every half second: in-flight turns, memory, descriptors and PostgreSQL connections."""

    def __init__(self, svc: list[int], sdk: list[int], sessions: str, db: Database) -> None:
        super().__init__(name="w9-sampler", daemon=True)
        self.svc, self.sdk, self.sessions, self.db = svc, sdk, sessions, db
        self.inflight = {"svc": 0, "sdk": 0}
        self.samples: list[dict[str, Any]] = []
        self._halt = threading.Event()

    def run(self) -> None:
        with psycopg.connect(self.db.conninfo, autocommit=True) as conn:
            name = conn.info.dbname
            while not self._halt.is_set():
                rows = conn.execute(
                    "SELECT coalesce(state, '?'), count(*) FROM pg_stat_activity"
                    " WHERE datname = %s AND pid <> pg_backend_pid()"
                    " AND backend_type = 'client backend' GROUP BY 1",  # not autovacuum
                    (name,),
                ).fetchall()
                states = {str(s): int(n) for s, n in rows}
                fds, memory_fds = _fds(self.svc, self.sessions)
                self.samples.append(
                    {
                        "t": time.monotonic(),
                        "svc_inflight": self.inflight["svc"],
                        "sdk_inflight": self.inflight["sdk"],
                        "svc_rss": _rss(self.svc),
                        "svc_fds": fds,
                        "svc_memory_fds": memory_fds,
                        "sdk_rss": _rss(self.sdk),
                        "sdk_fds": _fds(self.sdk)[0],
                        "pg_total": sum(states.values()),
                        "pg_in_use": sum(n for s, n in states.items() if s != "idle"),
                    }
                )
                self._halt.wait(SAMPLE_INTERVAL_S)

    def stop(self) -> list[dict[str, Any]]:
        self._halt.set()
        self.join()
        return self.samples


def _drive(side: LoadProcess, sampler: Sampler, results: dict[str, Any]) -> None:
    def seen(message: dict[str, Any]) -> None:
        sampler.inflight[side.side] = message["inflight"]
        if side.side == "svc":
            progress.advance(message["started"] - _drive_started.get(side.side, 0))
            _drive_started[side.side] = message["started"]

    try:
        results[side.side] = side.receive(seen)
    except Exception as e:  # reported as the phase's error
        results[side.side] = {"failed": f"{type(e).__name__}: {e}"}


_drive_started: dict[str, int] = {}


def _phase(
    sides: list[LoadProcess],
    server_pids: list[int],
    url: str,
    sampler_args: tuple,
    plan: W9Plan,
    rate: int,
) -> dict[str, Any]:
    total = round(rate * plan.arrive_s)
    progress.phase(f"w9 {rate}/s until {total} in flight", total=total)
    _drive_started.clear()
    sampler = Sampler(*sampler_args)
    idle = {
        "svc_rss": _rss(server_pids),
        "svc_fds": _fds(server_pids)[0],
        "sdk_rss": _rss([sampler.sdk[0]]),
    }
    lag_before = lag_buckets(url)
    cpu_before, wall_before = cpu_seconds(server_pids), time.monotonic()
    psutil.cpu_percent()  # starts the machine-wide interval read at the end
    sampler.start()
    for side in sides:
        side.send("arrivals", rate=rate, total=total, tokens=plan.tokens)
    results: dict[str, Any] = {}
    readers = [threading.Thread(target=_drive, args=(s, sampler, results)) for s in sides]
    for reader in readers:
        reader.start()
    for reader in readers:
        reader.join()
    samples = sampler.stop()
    cpu = cpu_seconds(server_pids) - cpu_before
    wall = time.monotonic() - wall_before
    machine_busy = psutil.cpu_percent() / 100
    lag_ms, probes = lag_p99_ms(lag_before, lag_buckets(url))
    return {
        "rate": rate,
        "total": total,
        "idle": idle,
        "svc_cores": cpu / wall if wall else float("nan"),
        "machine_busy": machine_busy,
        "loadavg_1m": os.getloadavg()[0],
        "lag_p99_ms": lag_ms,
        "lag_probes": probes,
        "results": results,
        "samples": samples,
    }


def w9(root: Path, database: Database, plan: W9Plan) -> tuple[list[Row], dict[str, Any]]:
    """Each rate in turn, both sides at once; rows per rate and side."""
    from app.auth import TokenService
    from app.config import load_settings

    secret = secrets.token_urlsafe(48)
    settings = load_settings(AUTH_JWT_SECRET=secret, DATA_DIR=root, DATABASE_URL=database.url)
    issue = TokenService.from_settings(settings).issue
    run = secrets.token_hex(4)
    pacing = {
        "token_delay": plan.token_delay_s,
        "first_token_delay": plan.first_token_delay_s,
        "tokens": plan.tokens,
    }
    phases = []
    profiled: dict[str, Any] = {}
    with ExitStack() as stack:
        svc_model = stack.enter_context(model_server(**pacing))
        sdk_model = stack.enter_context(model_server(**pacing))
        data = root / "w9-svc"
        server = stack.enter_context(
            running_server(1, data, database.url, secret, model_env(svc_model))
        )
        tokens = [issue(f"w9-{run}-{i}") for i in range(USERS)]
        svc = LoadProcess({"side": "svc", "url": server.url, "tokens": tokens}, root / "w9-svc.log")
        stack.callback(svc.close)
        sdk = LoadProcess({"side": "sdk", "base_url": sdk_model}, root / "w9-sdk.log")
        stack.callback(sdk.close)
        stack.callback(
            keep_logs, "w9", data / "server.log", root / "w9-svc.log", root / "w9-sdk.log"
        )
        for side in (svc, sdk):  # warm-up: imports, pools, the first memory files
            side.request("prepare", count=2, warm_turns=1, tokens=1)
        server_pids = tree(server.proc.pid)
        sampler_args = (server_pids, [sdk.pid], str(data.resolve()), database)
        for rate in plan.rates:
            with profiles.recording(server_pids[-1], f"w9-worker-{rate}", profiled):
                phase = _phase([svc, sdk], server_pids, server.url, sampler_args, plan, rate)
            phases.append(phase)
    rows, raw = _rows(phases, plan)
    return rows, {**raw, "profiles": profiled}


def _timings(result: dict[str, Any]) -> dict[str, Any]:
    samples = result.get("samples", [])
    ttfd = [s["ttfd_s"] for s in samples if s["ttfd_s"] is not None]
    gaps = [g for s in samples for g in s["gaps_s"]]
    errors = [s["error"] for s in samples if s["error"]]
    if "failed" in result:
        errors.append(result["failed"])
    return {
        "n": len(samples),
        "errors": len(errors),
        "first_errors": errors[:3],
        "ttfd_p99_ms": percentile(ttfd, 99) * 1000,
        "gap_p99_ms": percentile(gaps, 99) * 1000,
        "ttfd_ms": [round(x * 1000, 2) for x in ttfd],
        "gap_ms": [round(x * 1000, 2) for x in gaps],
    }


def _rows(phases: list[dict[str, Any]], plan: W9Plan) -> tuple[list[Row], dict[str, Any]]:
    rows: list[Row] = []
    raw: dict[str, Any] = {"plan": plan.__dict__, "phases": []}
    model_first, model_gap = plan.first_token_delay_s * 1000, plan.token_delay_s * 1000
    for phase in phases:
        total, samples = phase["total"], phase["samples"]
        t = {side: _timings(phase["results"].get(side, {})) for side in ("svc", "sdk")}
        # Saturated: the worker used its core, or the machine had none to give it (other
        # work on a shared host counts: a runnable loop that is not scheduled is late too).
        saturated = (
            phase["svc_cores"] >= SATURATED_CORES or phase["machine_busy"] >= SATURATED_MACHINE
        )
        for side in ("svc", "sdk"):
            ttfd_x = t[side]["ttfd_p99_ms"] - model_first
            gap_x = t[side]["gap_p99_ms"] - model_gap
            for what, excess in (("1st delta", ttfd_x), ("delta gap", gap_x)):
                row = Row("9", f"{total} in flight: {what} p99", side)
                row.value = f"model+{excess:.0f} ms, err {t[side]['errors']}"
                row.p95_ms = None
                if side == "svc":
                    sdk_x = t["sdk"]["ttfd_p99_ms" if "1st" in what else "gap_p99_ms"]
                    sdk_x -= model_first if "1st" in what else model_gap
                    if saturated:
                        row.target, row.met = "<= sdk's (CPU sat.)", excess <= sdk_x
                    else:
                        row.target = f"<= +{EXCESS_TARGET_MS:.0f} ms, 0 err"
                        row.met = excess <= EXCESS_TARGET_MS
                    row.met = row.met and t[side]["errors"] == 0
                    row.value += f", {phase['svc_cores']:.2f} cores"
                    row.note = (
                        f"worker {phase['svc_cores']:.2f} cores, machine "
                        f"{phase['machine_busy']:.0%} busy, load {phase['loadavg_1m']:.1f}: "
                        + ("saturated" if saturated else "not saturated")
                    )
                if t[side]["errors"]:
                    row.note = "; ".join([row.note, *t[side]["first_errors"]]).strip("; ")[:300]
                rows.append(row)
        rows += _resource_rows(phase, samples, total, phases[0]["idle"])
        raw["phases"].append({**{k: v for k, v in phase.items() if k != "results"}, "timings": t})
    return rows, raw


def _resource_rows(
    phase: dict[str, Any], samples: list[dict], total: int, idle: dict[str, Any]
) -> list[Row]:
    """Per in-flight turn: growth over the idle worker *before the first phase* (memory the
    allocator kept after a phase would otherwise hide what the next one needs)."""
    peak = max(samples, key=lambda s: s["svc_inflight"], default=None)
    if peak is None or not peak["svc_inflight"]:
        return [Row("9", f"{total} in flight: resources", "svc", note="no in-flight samples")]
    inflight = peak["svc_inflight"]
    plateau = [s for s in samples if s["svc_inflight"] >= 0.9 * inflight]
    rss_per = (peak["svc_rss"] - idle["svc_rss"]) / inflight / 1024
    fds_per = (peak["svc_fds"] - idle["svc_fds"]) / inflight
    sdk_peak = max(samples, key=lambda s: s["sdk_inflight"])
    sdk_rss_per = (sdk_peak["sdk_rss"] - idle["sdk_rss"]) / max(1, sdk_peak["sdk_inflight"])
    pg_peak = max(s["pg_total"] for s in samples)
    pg_use = statistics.median(s["pg_in_use"] for s in plateau)
    mem_fds = statistics.median(s["svc_memory_fds"] for s in plateau)
    pool = 2 * DATABASE_POOL_SIZE + 1  # pool, as much overflow, and the worker's LISTEN
    rows = [
        Row(
            "9",
            f"{total} in flight: RSS, fds per turn",
            "svc",
            value=f"{rss_per:.0f} KiB, {fds_per:.2f} fds",
            note=f"peak {inflight} in flight; bare SDK {sdk_rss_per / 1024:.0f} KiB per turn",
        ),
        Row(
            "9",
            f"{total} in flight: PG conns peak/in use",
            "svc",
            value=f"{pg_peak} / {pg_use:.0f} (pool {pool})",
            target=f"<= pool {pool}",
            met=pg_peak <= pool,
        ),
        Row(
            "9",
            f"{total} in flight: memory-file fds",
            "svc",
            value=f"median {mem_fds:.0f}, PG in use {pg_use:.0f}",
            target="flat in turns in flight",
            met=mem_fds <= MEMORY_POOL_FDS + 3 * max(2, 0.02 * inflight)
            and pg_use <= max(4, 0.05 * inflight),
            note="a waiting turn holds neither when neither grows with the turns in flight: "
            f"the memory pool keeps <= {MEMORY_POOL_FDS} descriptors of idle files, plus 3 per "
            "file in use now; PG in use is the median while the turns in flight plateau",
        ),
        Row(
            "9",
            f"{total} in flight: loop lag p99",
            "svc",
            value=f"{lag_text(phase['lag_p99_ms'])} ({phase['lag_probes']} probes)",
            target=f"<= {LAG_TARGET_MS:.0f} ms",
            met=phase["lag_p99_ms"] <= LAG_TARGET_MS,
        ),
    ]
    return rows
