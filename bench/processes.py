"""The outside processes of W8 and W9: the scripted model server and the load processes.

Both run as `python -m ...` children in process groups of their own (`bench.procs`), so none
of their CPU is counted on either measured side and an interrupted run kills them all. The
helpers here also read what the measured processes spend: CPU of a process tree (psutil) and
the event-loop lag histogram from a server's `/metrics`.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import httpx
import psutil

from bench import procs, progress
from bench.env import UNLIMITED
from bench.fds import children

REPO_ROOT = Path(__file__).resolve().parent.parent
LOG_DIR = REPO_ROOT / "data" / "bench" / "logs"
READY_TIMEOUT_S = 60.0
SCRAPE_TIMEOUT_S = 120.0
LAG_METRIC = "threadkeeper_event_loop_lag_seconds_bucket"
LAG_BOUNDS_S = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1)  # app.metrics


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, ["backend", ".", env.get("PYTHONPATH")]))
    env.update(UNLIMITED)
    return env


@contextlib.contextmanager
def model_server(
    *, token_delay: float = 0.0, first_token_delay: float = 0.0, tokens: int = 10
) -> Iterator[str]:
    """`python -m tests.model_server --mode fixed`; yields its base URL (…/v1)."""
    args = [sys.executable, "-m", "tests.model_server", "--mode", "fixed", "--port", "0"]
    args += ["--tokens", str(tokens), "--token-delay", str(token_delay)]
    args += ["--first-token-delay", str(first_token_delay), "--keep", "100"]
    proc = procs.spawn(args, cwd=REPO_ROOT, env=_env(), stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().decode()
        if not line.startswith("ready "):
            raise RuntimeError(f"model server did not start: {line!r}")
        fields = dict(part.split("=", 1) for part in line.split()[1:])
        progress.log(f"model server up: {fields['base_url']} (pid {proc.pid})")
        yield fields["base_url"]
    finally:
        procs.stop(proc, grace_s=5.0)


class LoadProcess:
    """A `bench.load_process` child: send it a command, wait for its one-line answer."""

    def __init__(self, spec: dict[str, Any], log: Path) -> None:
        self.side = spec["side"]
        self._log = log.open("wb")
        self.proc = procs.spawn(
            [sys.executable, "-m", "bench.load_process", json.dumps(spec)],
            cwd=REPO_ROOT,
            env=_env(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
        )
        self._read(None)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def send(self, op: str, **args: Any) -> None:
        stdin: IO[bytes] | None = self.proc.stdin
        assert stdin is not None
        stdin.write((json.dumps({"op": op, **args}) + "\n").encode())
        stdin.flush()

    def receive(self, on_progress: Callable[[dict[str, Any]], None] | None = None) -> Any:
        return self._read(on_progress)

    def request(self, op: str, **args: Any) -> Any:
        self.send(op, **args)
        return self._read(None)

    def _read(self, on_progress: Callable[[dict[str, Any]], None] | None) -> Any:
        assert self.proc.stdout is not None
        while line := self.proc.stdout.readline():
            message = json.loads(line)
            if "failed" in message:
                raise RuntimeError(f"{self.side} load process: {message['failed']}")
            if "inflight" in message:
                if on_progress is not None:
                    on_progress(message)
                continue
            return message.get("result", message)
        raise RuntimeError(f"{self.side} load process exited ({self.proc.poll()}); see its log")

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.send("quit")
        procs.stop(self.proc, grace_s=5.0)
        self._log.close()


def tree(pid: int) -> list[int]:
    """`pid` and every descendant (uvicorn's supervisor and its workers)."""
    found = [pid]
    for child in children(pid):
        found += tree(child)
    return found


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU the processes have used so far (children that ended excluded)."""
    total = 0.0
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            times = psutil.Process(pid).cpu_times()
            total += times.user + times.system
    return total


def lag_buckets(url: str) -> dict[float, float]:
    """The loop-lag histogram's cumulative buckets ({upper bound: count}) from `/metrics`."""
    try:
        text = httpx.get(f"{url}/metrics", timeout=SCRAPE_TIMEOUT_S).text
    except httpx.HTTPError:  # a saturated worker may not answer: no figure, not a crash
        return {}
    buckets: dict[float, float] = {}
    for line in text.splitlines():
        if line.startswith(LAG_METRIC):
            bound = line.split('le="', 1)[1].split('"', 1)[0]
            buckets[float(bound)] = buckets.get(float(bound), 0.0) + float(line.rsplit(" ", 1)[1])
    return buckets


def lag_p99_ms(before: dict[float, float], after: dict[float, float]) -> tuple[float, int]:
    """p99 of the probes observed between two scrapes (upper bucket bound, ms) and their count.

    The histogram only knows buckets, so the p99 is the bound of the bucket it falls in:
    "≤ 5 ms" is exact at the 5 ms bound, and a miss shows which bucket it reached.
    """
    if not before or not after:
        return float("nan"), 0
    bounds = sorted(after)
    counts = [after[b] - before.get(b, 0.0) for b in bounds]
    total = counts[-1] if counts else 0.0
    if total <= 0:
        return float("nan"), 0
    for bound, cumulative in zip(bounds, counts, strict=True):
        if cumulative >= 0.99 * total:
            return bound * 1000, int(total)
    return float("inf"), int(total)


def lag_text(p99_ms: float) -> str:
    """The p99 as its histogram bucket says it: "<= 5.0 ms", or "> 1000 ms" past the last."""
    if math.isnan(p99_ms):
        return "no scrape"
    if math.isinf(p99_ms):
        return f"> {max(LAG_BOUNDS_S) * 1000:.0f} ms"
    return f"<= {p99_ms:.1f} ms"


def keep_logs(workload: str, *paths: Path) -> None:
    """Copy logs out of the scratch directory (removed at the end) into data/bench/logs/."""
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    for path in paths:
        with contextlib.suppress(OSError):
            shutil.copyfile(path, LOG_DIR / f"{workload}-{path.parent.name}-{path.name}")
