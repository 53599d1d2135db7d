"""Workload 8: the CPU of a streamed turn with a real reply, service against the bare SDK.

One uvicorn worker answers through the scripted model server (fixed mode: the message's
`[tokens=N]` sets the reply's length), and the bare SDK runs the same agent against the same
server in a process of its own. Each batch gives every side the same turns at one reply length
(10, 100, 400 tokens) in rotated order; the CPU of the measured side's processes is read
before and after (psutil: the server's whole process tree; the SDK's process), never the
model server's or the HTTP client's. Fitting CPU = a + b·tokens over the lengths separates
what a turn costs once (a: HTTP, auth, PostgreSQL, memory, setup) from what each streamed
token costs (b), on a new thread and on a warm one (a few turns of history).
"""

from __future__ import annotations

import secrets
import statistics
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import profiles, progress
from bench.env import Database
from bench.processes import LoadProcess, cpu_seconds, keep_logs, model_server, tree
from bench.report import Row
from bench.server import running_server
from bench.stats import ratio, rotated

WARM_TURNS = 3
A_TARGET, B_TARGET = 2.0, 1.10


@dataclass(frozen=True)
class W8Plan:
    lengths: tuple[int, ...] = (10, 100, 400)
    turns: int = 16
    concurrency: int = 4
    reps: int = 2


def model_env(base_url: str) -> dict[str, str]:
    """A server whose turns go to the scripted model server over HTTP (chat completions)."""
    return {
        "MODEL_PROVIDER": "openai",
        "OPENAI_BASE_URL": base_url,
        "OPENAI_API": "chat_completions",
        "OPENAI_MAX_RETRIES": "0",
    }


def fit(points: list[tuple[int, float]]) -> tuple[float, float]:
    """Least-squares a and b of y = a + b·x."""
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    b = sum((x - mx) * (y - my) for x, y in points) / sxx if sxx else float("nan")
    return my - b * mx, b


def _batch(side: LoadProcess, pids: list[int], plan: W8Plan, length: int, warm: bool) -> dict:
    side.request("prepare", count=plan.turns, warm_turns=WARM_TURNS if warm else 0, tokens=10)
    before = cpu_seconds(pids)
    result = side.request("batch", tokens=length, concurrency=plan.concurrency)
    spent = cpu_seconds(pids) - before
    samples = result["samples"]
    errors = [s["error"] for s in samples if s["error"]]
    return {
        "tokens": length,
        "cpu_ms_per_turn": spent * 1000 / max(1, len(samples)),
        "errors": errors[:3],
        "error_count": len(errors),
        "deltas_median": statistics.median([s["deltas"] for s in samples] or [0]),
        "turn_ms": [round(s["total_s"] * 1000, 3) for s in samples],
    }


def w8(root: Path, database: Database, plan: W8Plan) -> tuple[list[Row], dict[str, Any]]:
    """Run both sides over every length and thread kind; fit and compare a and b."""
    from app.auth import TokenService
    from app.config import load_settings

    secret = secrets.token_urlsafe(48)
    settings = load_settings(AUTH_JWT_SECRET=secret, DATA_DIR=root, DATABASE_URL=database.url)
    issue = TokenService.from_settings(settings).issue
    run = secrets.token_hex(4)
    batches: dict[str, list[dict[str, Any]]] = {}
    profiled: dict[str, Any] = {}
    with ExitStack() as stack:
        base_url = stack.enter_context(model_server())
        server = stack.enter_context(
            running_server(1, root / "w8-svc", database.url, secret, model_env(base_url))
        )
        tokens = [issue(f"w8-{run}-{i}") for i in range(plan.concurrency)]
        svc = LoadProcess({"side": "svc", "url": server.url, "tokens": tokens}, root / "w8-svc.log")
        stack.callback(svc.close)
        sdk = LoadProcess({"side": "sdk", "base_url": base_url}, root / "w8-sdk.log")
        stack.callback(sdk.close)
        sides = [("svc", svc, tree(server.proc.pid)), ("sdk", sdk, [sdk.pid])]
        for _, side, _ in sides:  # warm-up: imports, pools, first files
            side.request("prepare", count=2, warm_turns=1, tokens=10)
        combos = [(kind, n) for kind in ("new", "warm") for n in plan.lengths]
        progress.phase("w8 batches", total=plan.reps * len(combos) * len(sides))
        stack.callback(
            keep_logs,
            "w8",
            root / "w8-svc" / "server.log",
            root / "w8-svc.log",
            root / "w8-sdk.log",
        )
        stack.enter_context(profiles.recording(sides[0][2][-1], "w8-worker", profiled))
        for rep in range(plan.reps):
            for kind, length in rotated(combos, rep):
                for name, side, pids in rotated(sides, rep):
                    batch = _batch(side, pids, plan, length, kind == "warm")
                    batches.setdefault(f"{name}/{kind}", []).append(batch)
                    progress.advance()
    rows, raw = _rows(batches, plan)
    return rows, {**raw, "profiles": profiled}


def _rows(batches: dict[str, list[dict[str, Any]]], plan: W8Plan) -> tuple[list[Row], dict]:
    rows: list[Row] = []
    fits: dict[str, tuple[float, float]] = {}
    for key, done in batches.items():
        fits[key] = fit([(b["tokens"], b["cpu_ms_per_turn"]) for b in done])
    for kind in ("new", "warm"):
        sdk_a, sdk_b = fits[f"sdk/{kind}"]
        for name in ("svc", "sdk"):
            a, b = fits[f"{name}/{kind}"]
            errors = sum(x["error_count"] for x in batches[f"{name}/{kind}"])
            row_a = Row("8", f"CPU/turn fixed a, {kind} thread", name, value=f"{a:.2f} ms")
            row_b = Row("8", f"CPU/token b, {kind} thread", name, value=f"{b:.3f} ms")
            if name == "svc":
                row_a.ratio, row_a.ratio_of = ratio(a, sdk_a), "a/sdk"
                row_a.target, row_a.met = f"a <= {A_TARGET:g}x sdk", a <= A_TARGET * sdk_a
                row_b.ratio, row_b.ratio_of = ratio(b, sdk_b), "b/sdk"
                row_b.target, row_b.met = f"b <= {B_TARGET:g}x sdk", b <= B_TARGET * sdk_b
            row_a.value += f", err {errors}"
            rows += [row_a, row_b]
        for length in plan.lengths:
            for name in ("svc", "sdk"):
                cpu = [
                    b["cpu_ms_per_turn"] for b in batches[f"{name}/{kind}"] if b["tokens"] == length
                ]
                row = Row("8", f"CPU/turn {length} tok, {kind} thread", name)
                row.median_ms = statistics.median(cpu)
                if name == "svc":
                    sdk_cpu = [
                        b["cpu_ms_per_turn"]
                        for b in batches[f"sdk/{kind}"]
                        if b["tokens"] == length
                    ]
                    row.ratio = ratio(row.median_ms, statistics.median(sdk_cpu))
                    row.ratio_of = "median/sdk"
                rows.append(row)
    raw = {
        "plan": plan.__dict__,
        "fits_ms": {k: {"a": a, "b_per_token": b} for k, (a, b) in fits.items()},
        "batches": batches,
    }
    return rows, raw
