"""`python -m bench [--quick] [--only w1,w3]`: run the workloads, print the table, write JSON.

Run from the repository root with PYTHONPATH=backend:. (`make bench` does). A workload that
crashes is reported as an error row and the others still run; missed targets are results,
not failures, so the exit status is non-zero only for crashes.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import traceback
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from bench import env, procs, profiles, progress
from bench.in_flight import W9Plan
from bench.realistic_turns import W8Plan
from bench.report import Row, print_report, write_json
from bench.systems import DESCRIPTIONS

WORKLOADS = (
    *("w1", "w2", "w3", "w4", "w5", "w6", "w7", "w8", "w9", "w9j", "w10", "w11", "w12", "w13"),
    "w14",
)
NEEDS_DATABASE = {"w6", "w7", "w8", "w9", "w9j", "w10", "w11", "w12", "w13", "w14"}


@dataclass(frozen=True)
class Plan:
    """Repetition counts: the full run fits in 10 minutes on 2 cores, --quick in one."""

    w1_reps: int = 200
    w2_reps: int = 150
    w3_conversations: int = 64
    w3_turns: int = 50
    w3_wide_conversations: int = 500  # one process, far more conversations than the pool
    w3_wide_turns: int = 10
    w3_reps: int = 2
    w5_reps: int = 50
    w6_conversations: int = 10_000
    w6_stats_reps: int = 50
    w7_clients: int = 64
    w7_rounds: int = 3
    w7_turns_per_round: int = 5
    w7_sequential: int = 40
    w11_clients: int = 32
    w11_rounds: int = 3
    w11_turns_per_round: int = 5
    w12_clients: int = 32
    w12_rounds: int = 3
    w12_turns_per_round: int = 5
    w12_sequential: int = 40
    # W10: 1,000 users x 100 threads x 20 messages, plus one user of 1,000 threads to erase.
    w10_users: int = 1_000
    w10_eraser_threads: int = 1_000
    w10_search_reps: int = 40
    w13_turns: int = 60
    w13_model_reps: int = 20
    w14_reps: int = 400
    w8: W8Plan = W8Plan()
    w9: W9Plan = W9Plan()
    w9j_sessions: int = 10_000  # loop lag while the jobs sweep this many sessions


QUICK = Plan(
    w1_reps=20,
    w2_reps=15,
    w3_turns=5,
    w3_wide_turns=2,
    w3_reps=1,
    w5_reps=5,
    w6_conversations=1_000,
    w6_stats_reps=10,
    w7_rounds=1,
    w7_turns_per_round=1,
    w7_sequential=5,
    w11_clients=8,
    w11_rounds=1,
    w11_turns_per_round=2,
    w12_rounds=1,
    w12_turns_per_round=1,
    w12_sequential=5,
    w10_users=20,
    w10_eraser_threads=200,
    w10_search_reps=5,
    w13_turns=16,
    w13_model_reps=3,
    w14_reps=40,
    w8=W8Plan(lengths=(10, 100), turns=4, concurrency=2, reps=1),
    w9j_sessions=1_000,
    w9=W9Plan(rates=(10,), arrive_s=2.0, tokens=3, token_delay_s=0.2, first_token_delay_s=0.2),
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a short smoke run (< 1 minute)")
    parser.add_argument(
        "--only", default="", help=f"comma-separated workloads ({','.join(WORKLOADS)})"
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="py-spy the measured worker in W8, W9 and W9j (data/bench/profiles/)",
    )
    parser.add_argument(
        "--w9-rates",
        default="",
        help="W9's arrival rates per second, comma-separated (default 20,50,100)",
    )
    args = parser.parse_args(argv)
    chosen = [w.strip().lower() for w in args.only.split(",") if w.strip()]
    unknown = sorted(set(chosen) - set(WORKLOADS))
    if unknown:
        parser.error(f"unknown workload(s) {', '.join(unknown)}; choose from {WORKLOADS}")
    selected = set(chosen or WORKLOADS)
    if selected & {"w3", "w4"}:  # descriptors are sampled during the throughput runs
        selected |= {"w3", "w4"}
    args.selected = selected
    return args


def _jobs(plan: Plan, root: Path, db: env.Database | None) -> list[tuple[str, Callable]]:
    """(workload, thunk) in run order; each thunk returns (rows, raw figures)."""
    from bench import (
        chatkit_turns,
        cleanup,
        compaction,
        in_flight,
        job_lag,
        limits,
        memory_workloads as memory,
        nodes,
        realistic_turns,
        service,
        throughput,
        w10 as users_data,
        w10_seed,
    )

    names = ["A", "B", "C", "T", "P"] if db else ["A", "B", "T"]
    url = db.url if db else None
    jobs: list[tuple[str, Callable]] = [
        ("w1", partial(_arun, memory.w1_get_items, names, root, url, plan.w1_reps)),
        ("w2", partial(_arun, memory.w2_turn_writes, names, root, url, plan.w2_reps)),
        (
            "w3",
            partial(
                throughput.w3_w4,
                names,
                root,
                url,
                modes=(
                    (1, plan.w3_conversations, plan.w3_turns),
                    (1, plan.w3_wide_conversations, plan.w3_wide_turns),
                    (4, plan.w3_conversations, plan.w3_turns),
                ),
                reps=plan.w3_reps,
            ),
        ),
        ("w5", partial(_arun, memory.w5_prune, root, plan.w5_reps)),
    ]
    if db is not None:
        w6 = partial(_arun, cleanup.w6, root, db, plan.w6_conversations, plan.w6_stats_reps)
        w7 = partial(
            service.w7,
            root,
            db,
            clients=plan.w7_clients,
            rounds=plan.w7_rounds,
            per_round=plan.w7_turns_per_round,
            seq=plan.w7_sequential,
        )
        w11 = partial(
            nodes.w11,
            root,
            db,
            clients=plan.w11_clients,
            rounds=plan.w11_rounds,
            per_round=plan.w11_turns_per_round,
        )
        w12 = partial(
            chatkit_turns.w12,
            root,
            db,
            clients=plan.w12_clients,
            rounds=plan.w12_rounds,
            per_round=plan.w12_turns_per_round,
            seq=plan.w12_sequential,
        )
        shape = w10_seed.Shape(
            users=plan.w10_users,
            threads_per_user=100,
            messages_per_thread=20,
            eraser_threads=plan.w10_eraser_threads,
        )
        w10 = partial(_arun, users_data.w10, root, db, shape, plan.w10_search_reps)
        w13 = partial(_arun, compaction.w13, root, db, plan.w13_turns, plan.w13_model_reps)
        w8 = partial(realistic_turns.w8, root, db, plan.w8)
        w9 = partial(in_flight.w9, root, db, plan.w9)
        jobs += [("w6", w6), ("w7", w7), ("w8", w8), ("w9", w9), ("w10", w10), ("w11", w11)]
        w9j = partial(job_lag.job_lag, root, db, plan.w9j_sessions)
        w14 = partial(_arun, limits.w14, root, db, plan.w14_reps)
        jobs += [("w9j", w9j), ("w12", w12), ("w13", w13), ("w14", w14)]
    return jobs


def _arun(fn: Callable, *args: Any) -> Any:
    return asyncio.run(fn(*args))


def run(args: argparse.Namespace) -> int:
    plan = QUICK if args.quick else Plan()
    if args.w9_rates:
        rates = tuple(int(r) for r in args.w9_rates.split(",") if r.strip())
        plan = replace(plan, w9=replace(plan.w9, rates=rates))
    started = time.monotonic()
    started_at = datetime.now(UTC)
    rows: list[Row] = []
    figures: dict[str, Any] = {}
    errors: dict[str, str] = {}
    database: dict[str, Any] = {}
    wants_db = bool(args.selected & (NEEDS_DATABASE | {"w1", "w2", "w3"}))
    with ExitStack() as stack:
        root = stack.enter_context(env.scratch_dir())
        db = None
        if wants_db:
            try:
                db = stack.enter_context(env.scratch_database())
                database = {"source": db.source, "server_version": env.server_version(db.conninfo)}
            except Exception as e:  # C, 6 and 7 are reported as errors; the rest still run
                errors["database"] = f"{type(e).__name__}: {e}"
        chosen = [(n, job) for n, job in _jobs(plan, root, db) if n in args.selected]
        for index, (name, job) in enumerate(chosen, 1):
            progress.workload(name, index, len(chosen))
            began = time.monotonic()
            try:
                new_rows, raw = job()
                rows += new_rows
                figures[name] = {**raw, "seconds": round(time.monotonic() - began, 2)}
                progress.finished(name, time.monotonic() - began)
            except Exception as e:
                errors[name] = traceback.format_exc()
                rows.append(Row(name[1:], "ERROR", "-", note=f"{type(e).__name__}: {e}"[:300]))
                progress.finished(name, time.monotonic() - began, f"{type(e).__name__}: {e}")
        for name in sorted(args.selected & NEEDS_DATABASE):
            if db is None:
                rows.append(
                    Row(name[1:], "SKIPPED", "-", note="no database: " + errors["database"])
                )
    duration = time.monotonic() - started
    payload = {
        "started_at": started_at.isoformat(),
        "duration_s": round(duration, 1),
        "mode": "quick" if args.quick else "full",
        "selected": sorted(args.selected),
        "plan": asdict(plan),
        "machine": env.machine(),
        "database": database,
        "systems": DESCRIPTIONS,
        "workloads": figures,
        "errors": errors,
    }
    path = write_json(env.OUT_DIR, payload, rows)
    machine = payload["machine"]
    header = (
        f"Threadkeeper bench ({payload['mode']}, {started_at:%Y-%m-%d %H:%M} UTC): "
        f"{machine['nproc']} CPUs, Python {machine['python']}, SQLite {machine['sqlite']}, "
        f"openai-agents {machine['openai_agents']}, PostgreSQL "
        f"{database.get('server_version', '-')} ({database.get('source', 'not used')})\n"
        + "\n".join(f"  {k}: {v}" for k, v in DESCRIPTIONS.items())
        + "\n  Systems interleaved (rotated order) in every repetition; times in ms.\n"
    )
    footer = [
        "",
        f"Wrote {path} and latest.json in {duration:.0f} s.",
        *(f"Workload {k} failed: {v.strip().splitlines()[-1]}" for k, v in errors.items()),
    ]
    print_report(rows, header, footer)
    return 1 if errors else 0


def main(argv: list[str] | None = None) -> int:
    """Run with progress on stderr; whatever happens, no started process outlives the run."""
    args = parse_args(argv)
    procs.install_signal_handlers()
    if args.profile:
        profiles.enable()
    try:
        with progress.display():
            return run(args)
    except KeyboardInterrupt as e:  # Ctrl-C or SIGTERM (procs.Interrupted)
        sys.stderr.write(f"interrupted ({e or 'SIGINT'}); stopping every process started\n")
        return 130
    finally:
        procs.stop_all()


if __name__ == "__main__":
    raise SystemExit(main())
