"""`python -m app sessions …`: the operators' runbook commands for agent memory."""

from __future__ import annotations

import json
import uuid
from typing import Annotated, Any

import typer

from app.cli.common import run_with_jobs
from app.config import MAX_RETENTION_DAYS
from app.scheduler import thread_admin

sessions_cli = typer.Typer(no_args_is_help=True, help="Inspect and maintain agent memory")


def _print(value: Any) -> None:
    if hasattr(value, "model_dump"):
        value = value.model_dump(mode="json")
    typer.echo(json.dumps(value, indent=2, default=str))


def _run_job(name: str, progress_label: str | None = None, **kwargs: Any) -> None:
    from app.models import RunStatus
    from app.scheduler.registry import run_job

    run = run_with_jobs(
        lambda ctx: run_job(name, ctx, trigger="cli", **kwargs), progress_label=progress_label
    )
    _print({"job": run.job, "status": run.status, "counts": run.counts, "error": run.error})
    if run.status == RunStatus.FAILED:
        raise typer.Exit(1)


@sessions_cli.command()
def stats() -> None:
    """Sessions, items, bytes, oldest/newest activity and sessions over the cap."""
    from app.services.memory_records import memory_totals

    async def op(ctx: Any) -> Any:
        async with ctx.sessionmaker() as db:
            return await memory_totals(db, max_items=ctx.settings.memory_cap)

    _print(run_with_jobs(op))


@sessions_cli.command()
def show(thread_id: uuid.UUID) -> None:
    """One thread's memory: items, bytes, last activity."""
    _print(run_with_jobs(lambda ctx: thread_admin.inspect(ctx, thread_id)))


@sessions_cli.command()
def prune(
    thread_id: Annotated[uuid.UUID | None, typer.Argument()] = None,
    all_sessions: Annotated[bool, typer.Option("--all", help="Every session over the cap")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run")] = False,
) -> None:
    """Prune one thread (THREAD_ID) or --all sessions over the cap, turn-aligned."""
    if (thread_id is None) == (not all_sessions):
        raise typer.BadParameter("give a THREAD_ID or --all")
    if thread_id is not None:
        from app.scheduler.jobs import prune as prune_job

        _print(run_with_jobs(lambda ctx: prune_job(ctx, thread_id=thread_id, dry_run=dry_run)))
    else:
        _run_job("prune", progress_label="Pruning", dry_run=dry_run)


@sessions_cli.command()
def clear(thread_id: uuid.UUID) -> None:
    """Make the agent forget a thread (its messages stay)."""
    _print(run_with_jobs(lambda ctx: thread_admin.clear(ctx, thread_id)))


@sessions_cli.command()
def cleanup(
    dry_run: Annotated[bool, typer.Option("--dry-run")] = False,
    older_than: Annotated[
        int | None, typer.Option("--older-than", min=1, max=MAX_RETENTION_DAYS, help="Days")
    ] = None,
) -> None:
    """Delete memory of threads inactive past the retention (or --older-than DAYS)."""
    _run_job("cleanup", progress_label="Cleaning up", dry_run=dry_run, older_than_days=older_than)


@sessions_cli.command()
def rebuild(thread_id: uuid.UUID) -> None:
    """Rebuild a thread's memory from the PostgreSQL log."""
    _print(run_with_jobs(lambda ctx: thread_admin.rebuild(ctx, thread_id)))


@sessions_cli.command()
def vacuum() -> None:
    """Vacuum memory files whose free pages pass AGENT_SESSION_VACUUM_FREE_RATIO."""
    _run_job("vacuum", progress_label="Vacuuming")


@sessions_cli.command()
def verify() -> None:
    """Cross-store check (report only; exit 1 when anything is off): orphan files, live rows
    whose file is gone, and memory that is not exactly its log (behind, ahead, diverged)."""
    from app.scheduler.jobs import verify as verify_job

    report = run_with_jobs(verify_job)
    _print(report)
    if not report["ok"]:
        raise typer.Exit(1)


@sessions_cli.command("run-job")
def run_job_command(name: str) -> None:
    """Run a maintenance job now: cleanup, prune, sweep-orphans, vacuum."""
    from app.scheduler.registry import JOBS

    if name not in JOBS:
        raise typer.BadParameter(f"unknown job {name!r}; jobs: {', '.join(JOBS)}")
    _run_job(name)
