"""The one place that maps job names to functions and triggers, and runs a job safely.

`run_job` is what the scheduler, the CLI and the admin API call: it takes a PostgreSQL
advisory lock for the job (skipping the run when another scheduler holds it) and records the
outcome in `maintenance_runs`. The lock is transaction-scoped and held by a transaction that
stays open for the whole run, which also works through transaction-mode poolers.
"""

from __future__ import annotations

import hashlib
import logging
import zoneinfo
from collections.abc import Awaitable, Callable
from typing import Any

import sqlalchemy as sa
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from app.db import session_scope
from app.metrics import JOB_LAST_SUCCESS, JOB_RUNS
from app.models import MaintenanceRun, RunStatus
from app.models.base import utc_now
from app.scheduler import jobs
from app.scheduler.context import JobContext

logger = logging.getLogger(__name__)

JobFunction = Callable[..., Awaitable[dict[str, Any]]]

# Job id (CLI and admin name) -> function. The id is the function's name in kebab case.
JOBS: dict[str, JobFunction] = {
    "cleanup": jobs.cleanup,
    "prune": jobs.prune,
    "sweep-orphans": jobs.sweep_orphans,
    "vacuum": jobs.vacuum,
    "reconcile": jobs.reconcile,
}


class UnknownJobError(KeyError):
    pass


def lock_key(job: str) -> int:
    """A stable signed 64-bit advisory lock key per job name."""
    digest = hashlib.sha256(f"threadkeeper:{job}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


async def run_job(
    name: str, ctx: JobContext, *, trigger: str = "scheduler", **kwargs: Any
) -> MaintenanceRun:
    """Run job `name` once, unless another process is running it; record the outcome.

    Raises:
        UnknownJobError: no job has that name.
    """
    if name not in JOBS:
        raise UnknownJobError(name)
    async with ctx.sessionmaker() as lock_db, lock_db.begin():
        # This transaction only holds the lock while the job works (a prune sweep that
        # summarizes with a model can take minutes): it must not be cut as idle.
        await (await lock_db.connection()).execute(
            sa.text("SET LOCAL idle_in_transaction_session_timeout = 0")
        )
        got = await lock_db.scalar(sa.select(sa.func.pg_try_advisory_xact_lock(lock_key(name))))
        run = MaintenanceRun(job=name, trigger=trigger)
        if not got:
            run.status, run.finished_at = RunStatus.SKIPPED, utc_now()
            JOB_RUNS.labels(name, run.status).inc()
            logger.info("Job %s skipped: another process holds its lock", name)
            return await _save(ctx, run)
        await _save(ctx, run)
        try:
            run.counts = await JOBS[name](ctx, **kwargs)
            run.status = RunStatus.SUCCEEDED
            JOB_LAST_SUCCESS.labels(name).set_to_current_time()
            logger.info("Job %s finished: %s", name, run.counts)
        except Exception as e:
            # A job's failure is recorded and logged here, at the boundary, never raised into
            # the scheduler (which would only log it less usefully).
            run.status, run.error = RunStatus.FAILED, f"{type(e).__name__}: {e}"
            logger.exception("Job %s failed", name)
        run.finished_at = utc_now()
        JOB_RUNS.labels(name, run.status).inc()
        return await _save(ctx, run)


async def _save(ctx: JobContext, run: MaintenanceRun) -> MaintenanceRun:
    async with session_scope(ctx.sessionmaker) as db:
        merged = await db.merge(run)
    return merged


def build_scheduler(ctx: JobContext) -> AsyncIOScheduler:
    """The in-app scheduler: daily cleanup, periodic prune sweep, daily orphan sweep."""
    settings = ctx.settings
    tz = zoneinfo.ZoneInfo(settings.AGENT_SESSION_CLEANUP_TZ)
    scheduler = AsyncIOScheduler(
        timezone=tz,
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 300},
    )

    def add(name: str, trigger: Any) -> None:
        scheduler.add_job(
            run_job, trigger, args=[name, ctx], id=name, name=name, replace_existing=True
        )

    if settings.AGENT_SESSION_RETENTION_DAYS > 0:
        add("cleanup", CronTrigger(hour=settings.AGENT_SESSION_CLEANUP_HOUR, minute=0, timezone=tz))
    else:
        logger.info("Daily cleanup disabled (AGENT_SESSION_RETENTION_DAYS=0)")
    add(
        "prune", IntervalTrigger(minutes=settings.AGENT_SESSION_PRUNE_INTERVAL_MINUTES, timezone=tz)
    )
    add(
        "sweep-orphans",
        CronTrigger(hour=settings.AGENT_SESSION_CLEANUP_HOUR, minute=30, timezone=tz),
    )
    return scheduler
