"""`GET /metrics`: Prometheus exposition (no auth; restrict it at the network edge)."""

from __future__ import annotations

import sqlalchemy as sa
from fastapi import APIRouter, Response
from sqlmodel import col, select

from app.api.deps import DbSessionDep, SettingsDep
from app.metrics import (
    ACTIVE_SESSIONS,
    IDLE_SESSIONS,
    ITEMS_PER_SESSION,
    JOB_LAST_SUCCESS,
    MEMORY_BYTES,
    SESSIONS_OVER_CAP,
    render_metrics,
)
from app.models import MaintenanceRun, RunStatus
from app.services.memory_records import memory_totals

router = APIRouter(tags=["health"])


@router.get("/metrics", response_class=Response)
async def metrics(*, db: DbSessionDep, settings: SettingsDep) -> Response:
    """Counters, latencies and stored-memory gauges in Prometheus text format."""
    stats = await memory_totals(db, max_items=settings.memory_cap)
    ACTIVE_SESSIONS.set(stats.sessions)
    MEMORY_BYTES.set(stats.bytes_on_disk)
    ITEMS_PER_SESSION.set(stats.average_items)
    IDLE_SESSIONS.set(stats.idle)
    SESSIONS_OVER_CAP.set(stats.over_cap)
    # Last success per job from the shared table, so every pod reports it, not just the one
    # whose scheduler happened to run the job.
    rows = await db.exec(
        select(MaintenanceRun.job, sa.func.max(MaintenanceRun.finished_at))
        .where(col(MaintenanceRun.status) == RunStatus.SUCCEEDED)
        .group_by(col(MaintenanceRun.job))
    )
    for job, finished_at in rows.all():
        if finished_at is not None:
            JOB_LAST_SUCCESS.labels(job).set(finished_at.timestamp())
    body, content_type = render_metrics()
    return Response(body, media_type=content_type)
