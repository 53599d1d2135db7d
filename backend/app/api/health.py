"""Liveness and readiness probes (no auth: load balancers call them)."""

from __future__ import annotations

import asyncio
import os
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app import schema
from app.api.deps import MemoryStoreDep, ModelProviderDep, SettingsDep
from app.memory import AgentMemoryStore, MemoryStore

router = APIRouter(prefix="/health", tags=["health"])

READY_DB_TIMEOUT_SECONDS = 2.0
# Reported, never counted: a provider outage must not take every pod out of the load balancer
# (each could still serve threads, history and tasks, and would all come back at once).
INFORMATIONAL = ("model_provider",)


class Liveness(BaseModel):
    status: str


@router.get("/live", response_model=Liveness)
async def live() -> Liveness:
    """The process is up and serving."""
    return Liveness(status="ok")


@router.get("/ready", responses={503: {"description": "A component is not ready"}})
async def ready(
    *,
    request: Request,
    memory_store: MemoryStoreDep,
    settings: SettingsDep,
    provider: ModelProviderDep,
) -> JSONResponse:
    """Ready when the database answers in time, the schema is at head and memory is writable
    with at least AGENT_SESSION_MIN_FREE_MB free. The model provider is reported (checked at
    most once a minute) but never makes the service unready."""
    engine: AsyncEngine = request.state.engine
    components: dict[str, Any] = {
        "database": await _check_database(engine),
        "memory_dir": _check_memory_dir(memory_store, settings.AGENT_SESSION_MIN_FREE_MB),
        "model_provider": await provider.status(),
    }
    ready = all(v == "ok" for k, v in components.items() if k not in INFORMATIONAL)
    return JSONResponse(
        {
            "status": "ok" if ready else "unavailable",
            "components": components,
            "informational": list(INFORMATIONAL),
        },
        status_code=200 if ready else 503,
    )


def _check_memory_dir(memory_store: MemoryStore, min_free_mb: int) -> str:
    """Writable, with room: a full disk makes every turn fail, so the pod is not ready.
    Memory in PostgreSQL (no directory) is as ready as the database."""
    if not isinstance(memory_store, AgentMemoryStore):
        return "ok"
    if not os.access(memory_store.root, os.W_OK):
        return "not writable"
    try:
        free_mb = memory_store.free_bytes() // (1024 * 1024)
    except OSError as e:
        return f"unavailable ({type(e).__name__})"
    if free_mb < min_free_mb:
        return f"low on disk space: {free_mb} MB free, AGENT_SESSION_MIN_FREE_MB={min_free_mb}"
    return "ok"


async def _check_database(engine: AsyncEngine) -> str:
    try:
        async with asyncio.timeout(READY_DB_TIMEOUT_SECONDS):
            async with engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
            if not await schema.is_at_head(engine):
                return "schema is not at head: run `make migrate`"
    except TimeoutError:
        return "timeout"
    except Exception as e:  # any failure means "not ready"; the probe must not raise
        return f"unavailable ({type(e).__name__})"
    return "ok"
