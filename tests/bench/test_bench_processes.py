"""The workloads that run real processes (W8, W9): they produce rows, and leave nothing behind.

`python -m bench` starts uvicorn servers, model servers and load processes in process groups
of their own; an interrupted run (SIGTERM from a CI runner, Ctrl-C) must stop them all. These
tests run the real thing at its --quick size and check the harness, never a timing.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from bench import env
from bench.fds import children
from bench.in_flight import W9Plan, w9
from bench.job_lag import JOBS, job_lag
from bench.realistic_turns import W8Plan, fit, w8

REPO_ROOT = Path(__file__).resolve().parents[2]
SERVER_UP_TIMEOUT_S = 120.0


def _descendants(pid: int) -> list[int]:
    found: list[int] = []
    for child in children(pid):
        found += [child, *_descendants(child)]
    return found


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_fit_recovers_a_line() -> None:
    a, b = fit([(10, 25.0), (100, 70.0), (400, 220.0)])
    assert (a, b) == (pytest.approx(20.0), pytest.approx(0.5))


def test_sigterm_stops_every_process_the_bench_started(test_database) -> None:
    """SIGTERM once the W8 server is up: the bench exits and none of its children survive."""
    bench_env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(["backend", "."]),
        "BENCH_DATABASE_URL": test_database.url,
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench", "--quick", "--only", "w8"],
        cwd=REPO_ROOT,
        env=bench_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        deadline = time.monotonic() + SERVER_UP_TIMEOUT_S
        for line in proc.stderr:  # progress lines; the server's is "server up: ..."
            if "server up: 1 worker" in line or time.monotonic() > deadline:
                break
        started = _descendants(proc.pid)
        assert any("app" in " ".join(psutil.Process(p).cmdline()) for p in started)
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)
        assert proc.returncode == 130
        assert [p for p in started if _alive(p)] == []
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.slow
def test_realistic_turns_produce_rows(test_database, tmp_path: Path) -> None:
    database = env.Database(test_database.url, env.libpq(test_database.url), "test")
    plan = W8Plan(lengths=(10, 40), turns=2, concurrency=1, reps=1)
    rows, raw = w8(tmp_path, database, plan)
    assert {r.system for r in rows} == {"svc", "sdk"}
    assert set(raw["fits_ms"]) == {"svc/new", "svc/warm", "sdk/new", "sdk/warm"}
    batches = [b for done in raw["batches"].values() for b in done]
    assert all(b["error_count"] == 0 for b in batches)
    sdk = raw["batches"]["sdk/new"] + raw["batches"]["sdk/warm"]
    assert {b["deltas_median"] for b in sdk} == {10, 40}  # one delta per token
    # The service sends the deltas that queued while its stream was busy as one event.
    assert all(b["deltas_median"] >= 1 for b in batches)


@pytest.mark.slow
def test_many_in_flight_produce_rows(test_database, tmp_path: Path) -> None:
    database = env.Database(test_database.url, env.libpq(test_database.url), "test")
    plan = W9Plan(rates=(8,), arrive_s=1.0, tokens=3, token_delay_s=0.1, first_token_delay_s=0.1)
    rows, raw = w9(tmp_path, database, plan)
    (phase,) = raw["phases"]
    assert {side: t["n"] for side, t in phase["timings"].items()} == {"svc": 8, "sdk": 8}
    assert all(t["errors"] == 0 for t in phase["timings"].values())
    assert phase["samples"]
    assert phase["lag_probes"] > 0
    assert {r.measure for r in rows} >= {"8 in flight: loop lag p99", "8 in flight: 1st delta p99"}


@pytest.mark.slow
def test_job_lag_runs_every_job_over_the_seed(private_database: str, tmp_path: Path) -> None:
    """On a database of its own: the jobs sweep every thread, so others' rows would count."""
    database = env.Database(private_database, env.libpq(private_database), "test")
    rows, raw = job_lag(tmp_path, database, 200)
    assert [r.measure for r in rows] == [f"{job} job over 200: loop lag p99" for job in JOBS]
    assert {name: run["run"]["status"] for name, run in raw["jobs"].items()} == dict.fromkeys(
        JOBS, "succeeded"
    )
    assert raw["jobs"]["cleanup"]["run"]["counts"]["deleted"] == 100  # the idle half
