"""Operator endpoints: session stats and maintenance, for tokens with the admin claim only."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from sqlmodel import col, select

from app.api.deps import AdminUserDep, DbSessionDep, SettingsDep, get_admin_user
from app.config import MAX_RETENTION_DAYS
from app.errors import ERROR_RESPONSES, ErrorPublic, NotFoundError
from app.models import MaintenanceRun, MaintenanceRunPublic, MaintenanceRunsPublic
from app.models.text import StorableText
from app.scheduler import jobs, thread_admin
from app.scheduler.context import JobContext
from app.scheduler.registry import JOBS, run_job
from app.services import memory_records
from app.services.memory_records import MemoryTotals

router = APIRouter(
    prefix="/admin",
    tags=["admin"],
    dependencies=[Depends(get_admin_user)],
    responses={**ERROR_RESPONSES, 403: {"description": "No admin claim", "model": ErrorPublic}},
)


def get_job_context(request: Request) -> JobContext:
    ctx: JobContext = request.state.job_context
    return ctx


JobContextDep = Annotated[JobContext, Depends(get_job_context)]
DryRun = Annotated[bool, Query(description="Only report what would change")]


@router.get("/sessions/stats", response_model=MemoryTotals)
async def get_session_stats(*, db: DbSessionDep, settings: SettingsDep) -> MemoryTotals:
    """Counts and totals over all agent memory, from PostgreSQL bookkeeping."""
    return await memory_records.memory_totals(db, max_items=settings.memory_cap)


@router.get("/sessions/verify")
async def verify_sessions(*, ctx: JobContextDep) -> dict[str, Any]:
    """Cross-check both stores (changing nothing): orphan files, live rows whose file is
    gone, and memory that is not exactly its log."""
    return await jobs.verify(ctx)


@router.get("/sessions/{thread_id}")
async def show_session(*, ctx: JobContextDep, thread_id: uuid.UUID) -> dict[str, Any]:
    """One thread's memory: state, items, bytes, last activity."""
    return await thread_admin.inspect(ctx, thread_id)


@router.post("/sessions/{thread_id}/prune")
async def prune_session(
    *, ctx: JobContextDep, thread_id: uuid.UUID, dry_run: DryRun = False
) -> dict[str, Any]:
    """Prune one thread's memory to the cap, turn-aligned."""
    await thread_admin.inspect(ctx, thread_id)  # 404 for an unknown thread
    return await jobs.prune(ctx, thread_id=thread_id, dry_run=dry_run)


@router.post("/sessions/{thread_id}/clear")
async def clear_session(*, ctx: JobContextDep, thread_id: uuid.UUID) -> dict[str, Any]:
    """Make the agent forget a thread (its messages stay)."""
    return await thread_admin.clear(ctx, thread_id)


@router.post("/sessions/{thread_id}/rebuild")
async def rebuild_session(*, ctx: JobContextDep, thread_id: uuid.UUID) -> dict[str, Any]:
    """Rebuild a thread's memory from the PostgreSQL log."""
    return await thread_admin.rebuild(ctx, thread_id)


@router.post("/sessions/prune", response_model=MaintenanceRunPublic)
async def prune_sessions(*, ctx: JobContextDep, dry_run: DryRun = False) -> MaintenanceRun:
    """Run the prune sweep now."""
    return await run_job("prune", ctx, trigger="admin", dry_run=dry_run)


@router.post("/sessions/cleanup", response_model=MaintenanceRunPublic)
async def cleanup_sessions(
    *,
    ctx: JobContextDep,
    dry_run: DryRun = False,
    older_than_days: Annotated[int | None, Query(ge=1, le=MAX_RETENTION_DAYS)] = None,
) -> MaintenanceRun:
    """Run the cleanup now (optionally with another age limit)."""
    return await run_job(
        "cleanup", ctx, trigger="admin", dry_run=dry_run, older_than_days=older_than_days
    )


@router.post("/sessions/vacuum", response_model=MaintenanceRunPublic)
async def vacuum_sessions(*, ctx: JobContextDep) -> MaintenanceRun:
    """Vacuum fragmented memory files now."""
    return await run_job("vacuum", ctx, trigger="admin")


@router.post("/jobs/{name}/run", response_model=MaintenanceRunPublic)
async def run_named_job(*, ctx: JobContextDep, name: str) -> MaintenanceRun:
    """Run any registered job now (`cleanup`, `prune`, `sweep-orphans`, `vacuum`)."""
    if name not in JOBS:
        raise NotFoundError(f"No job named {name!r}; jobs: {', '.join(JOBS)}")
    return await run_job(name, ctx, trigger="admin")


@router.get("/maintenance-runs", response_model=MaintenanceRunsPublic)
async def list_maintenance_runs(
    *,
    db: DbSessionDep,
    _: AdminUserDep,
    job: StorableText | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> MaintenanceRunsPublic:
    """The latest maintenance runs, newest first."""
    query = select(MaintenanceRun).order_by(col(MaintenanceRun.started_at).desc()).limit(limit)
    if job is not None:
        query = query.where(MaintenanceRun.job == job)
    runs = (await db.exec(query)).all()
    return MaintenanceRunsPublic(data=[MaintenanceRunPublic.model_validate(r) for r in runs])
