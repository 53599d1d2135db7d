"""The FastAPI application: `create_app(settings)` and the lifespan that owns every resource."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TypedDict

from agents.models.interface import Model
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from app.api import health, metrics
from app.api.dev import include_dev_routes
from app.api.router import api_router
from app.auth import TokenService
from app.bootstrap import (
    build_compactor,
    build_job_context,
    build_memory_store,
    build_turn_runner,
    open_database,
    resolve_model,
)
from app.config import Settings, get_settings
from app.cors import add_cors
from app.db import SessionMaker
from app.errors import register_exception_handlers
from app.logging import configure_logging
from app.memory import AgentMemoryStore
from app.metrics import MetricsMiddleware
from app.middleware import BodySizeLimitMiddleware
from app.scheduler.context import JobContext
from app.scheduler.registry import build_scheduler, run_job
from app.services.users import UserIdCache
from app.turns.compaction import Compactor
from app.turns.runner import TurnRunner
from app.web.docs import add_docs
from app.web.page import add_page

logger = logging.getLogger(__name__)


class State(TypedDict):
    engine: AsyncEngine
    sessionmaker: SessionMaker
    memory_store: AgentMemoryStore
    token_service: TokenService
    turn_runner: TurnRunner
    compactor: Compactor | None
    job_context: JobContext
    user_ids: UserIdCache
    scheduler: AsyncIOScheduler | None


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[State]:
    settings: Settings = app.state.settings
    async with open_database(settings) as database:
        memory_store = build_memory_store(settings)
        model = resolve_model(settings, app.state.model_override)
        compactor = build_compactor(settings, database, memory_store, model)
        turn_runner = build_turn_runner(
            settings, database, memory_store, model=model, compactor=compactor
        )
        job_context = build_job_context(settings, database, memory_store, compactor)
        scheduler = build_scheduler(job_context) if settings.SCHEDULER_ENABLED else None
        if scheduler is not None:
            scheduler.start()
            # Repair what a crash left half-done, without delaying startup.
            scheduler.add_job(
                run_job,
                args=["reconcile", job_context],
                kwargs={"trigger": "startup"},
                id="reconcile-on-startup",
            )
        yield State(
            engine=database.engine,
            sessionmaker=database.sessionmaker,
            memory_store=memory_store,
            token_service=TokenService.from_settings(settings),
            turn_runner=turn_runner,
            compactor=compactor,
            job_context=job_context,
            user_ids=UserIdCache(),
            scheduler=scheduler,
        )
        if scheduler is not None:
            scheduler.shutdown(wait=False)
        await turn_runner.aclose()
        if compactor is not None:
            await compactor.aclose()
        memory_store.close()


def create_app(settings: Settings | None = None, *, model: Model | None = None) -> FastAPI:
    """Build the app for `settings` (default: from the environment and `.env`).

    `model` replaces the model chosen by settings (any SDK `Model`, e.g. a scripted one).
    """
    settings = settings or get_settings()
    configure_logging(settings)
    app = FastAPI(
        title="Threadkeeper",
        summary="Chat threads for agents built on the OpenAI Agents SDK",
        version="0.1.0",
        lifespan=lifespan,
        # Served by add_docs from local files: FastAPI's defaults load them from a CDN.
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.model_override = model
    register_exception_handlers(app)
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.MAX_REQUEST_BYTES)
    if settings.METRICS_ENABLED:
        app.add_middleware(MetricsMiddleware)
        app.include_router(metrics.router)
    app.include_router(health.router)
    app.include_router(api_router, prefix="/api")
    include_dev_routes(app, settings)
    add_docs(app)
    add_page(app, settings)
    add_cors(app, settings)
    return app


app = create_app()
