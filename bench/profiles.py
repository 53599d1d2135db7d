"""`--profile`: py-spy samples the measured worker during W8 and W9, and a summary is kept.

A missed target says *that* the service is slow, a profile says *where*. py-spy attaches from
outside (ptrace), so the worker runs unmodified; `--nonblocking` never pauses it, and idle
threads are not sampled, so every sample is CPU the worker was spending. The collapsed stacks
go to data/bench/profiles/<name>.txt (feed them to flamegraph.pl or speedscope), and the top
functions by own and by inclusive samples go into the run's JSON.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench import procs, progress
from bench.env import OUT_DIR

PROFILE_DIR = OUT_DIR / "profiles"
RATE_HZ = 100
TOP = 15
_LINE = re.compile(r":\d+\)$")
_enabled = False


def enable() -> None:
    global _enabled
    _enabled = True


def _py_spy() -> Path:
    return Path(sys.executable).parent / "py-spy"


@contextlib.contextmanager
def recording(pid: int, name: str, into: dict[str, Any]) -> Iterator[None]:
    """Sample `pid` while the block runs; put the summary in `into[name]` (when enabled)."""
    if not _enabled or not _py_spy().exists():
        yield
        return
    PROFILE_DIR.mkdir(parents=True, exist_ok=True)
    path = PROFILE_DIR / f"{name}.txt"
    args = [str(_py_spy()), "record", "--pid", str(pid), "--rate", str(RATE_HZ)]
    args += ["--nonblocking", "--format", "raw", "--output", str(path)]
    proc = procs.spawn(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGINT)  # py-spy writes its output on SIGINT
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=60)
        procs.stop(proc, grace_s=5.0)
        if path.exists():
            into[name] = {"file": str(path), **summarize(path)}
            progress.log(f"profile {name}: {path}")


def summarize(path: Path, top: int = TOP) -> dict[str, Any]:
    """Top functions by own samples and by inclusive samples, in % of all samples."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_LINE.sub(")", f) for f in stack.split(";")]
        total += count
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    pct = 100.0 / total if total else 0.0
    return {
        "samples": total,
        "own_pct": [(f, round(n * pct, 1)) for f, n in own.most_common(top)],
        "inclusive_pct": [(f, round(n * pct, 1)) for f, n in inclusive.most_common(top * 3)],
    }
