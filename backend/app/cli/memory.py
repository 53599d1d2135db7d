"""`python -m app sessions …`: the operators' runbook commands for agent memory."""

from __future__ import annotations

import json
import uuid
from typing import Annotated, Any

import typer

from app.cli.common import run_with_jobs
from app.config import MAX_RETENTION_DAYS

# The jobs `run-job` runs: `app.scheduler.registry.JOB_NAMES`, named here so that a usage error or
# --help does not load the scheduler and the Agents SDK (a test keeps the two lists equal).
JOB_NAMES = (
    "cleanup",
    "prune",
    "sweep-orphans",
    "vacuum",
    "reconcile",
    "expire-turn-events",
    "reindex-search",
)

sessions_cli = typer.Typer(no_args_is_help=True, help="Inspect and maintain agent memory")


def _thread_id(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise typer.BadParameter(
            f"{value!r} is not a thread id: a UUID like 3f2b8c1e-4d5a-4b6c-9e7f-0a1b2c3d4e5f, "
            "as in the API's thread `id`"
        ) from None


ThreadId = Annotated[
    uuid.UUID, typer.Argument(metavar="THREAD_ID", parser=_thread_id, help="The thread's id")
]


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
def show(thread_id: ThreadId) -> None:
    """One thread's memory: items, bytes, last activity."""
    from app.scheduler import thread_admin

    _print(run_with_jobs(lambda ctx: thread_admin.inspect(ctx, thread_id)))


@sessions_cli.command()
def prune(
    ctx: typer.Context,
    thread_id: Annotated[
        uuid.UUID | None,
        typer.Argument(metavar="[THREAD_ID]", parser=_thread_id, help="The thread's id"),
    ] = None,
    all_sessions: Annotated[bool, typer.Option("--all", help="Every session over the cap")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run")] = False,
) -> None:
    """Prune one thread (THREAD_ID) or --all sessions over the cap, turn-aligned."""
    if (thread_id is None) == (not all_sessions):
        raise typer.BadParameter("give exactly one", ctx=ctx, param_hint="THREAD_ID / --all")
    if thread_id is not None:
        from app.scheduler.jobs import prune as prune_job

        _print(run_with_jobs(lambda ctx: prune_job(ctx, thread_id=thread_id, dry_run=dry_run)))
    else:
        _run_job("prune", progress_label="Pruning", dry_run=dry_run)


@sessions_cli.command()
def clear(thread_id: ThreadId) -> None:
    """Make the agent forget a thread (its messages stay)."""
    from app.scheduler import thread_admin

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
def rebuild(thread_id: ThreadId) -> None:
    """Rebuild a thread's memory from the PostgreSQL log."""
    from app.scheduler import thread_admin

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


@sessions_cli.command("run-job", help=f"Run a maintenance job now: {', '.join(JOB_NAMES)}.")
def run_job_command(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(metavar="JOB", help=f"One of: {', '.join(JOB_NAMES)}")],
) -> None:
    if name not in JOB_NAMES:
        raise typer.BadParameter(
            f"no job {name!r}; jobs: {', '.join(JOB_NAMES)}", ctx=ctx, param_hint="'JOB'"
        )
    _run_job(name)
