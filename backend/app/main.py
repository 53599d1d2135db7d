"""The FastAPI application: `create_app(settings)` and the lifespan that owns every resource."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TypedDict

from agents.models.interface import Model
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from app.api import health, metrics
from app.api.deps import get_current_user
from app.api.dev import include_dev_routes
from app.api.router import api_router
from app.assistant.provider import ModelProvider
from app.assistant.registry import AgentRegistry
from app.auth import TokenService
from app.bootstrap import (
    Assistant,
    Database,
    build_assistant,
    build_compactor,
    build_job_context,
    build_memory_store,
    build_turn_runner,
    open_database,
)
from app.chatkit.router import chatkit_router
from app.config import Settings, get_settings
from app.cors import add_cors
from app.db import SessionMaker
from app.errors import register_exception_handlers
from app.logging import configure_logging
from app.loop_monitor import LoopLagProbe
from app.memory import MemoryStore, off_loop
from app.metrics import THREADS_FREED_AT_START, MetricsMiddleware, mark_worker_exited
from app.middleware import BodySizeLimitMiddleware
from app.node import NodeIdentity, join_node
from app.scheduler.context import JobContext
from app.scheduler.registry import build_scheduler, run_job
from app.services import search_index
from app.services.nodes import register_incarnation
from app.services.users import UserIdCache
from app.turns.compaction import Compactor
from app.turns.runner import TurnRunner
from app.web.docs import add_docs
from app.web.page import add_page

logger = logging.getLogger(__name__)


class State(TypedDict):
    engine: AsyncEngine
    sessionmaker: SessionMaker
    memory_store: MemoryStore
    token_service: TokenService
    model_provider: ModelProvider
    agents: AgentRegistry
    turn_runner: TurnRunner
    compactor: Compactor | None
    job_context: JobContext
    user_ids: UserIdCache
    scheduler: AsyncIOScheduler | None
    node: NodeIdentity


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[State]:
    settings: Settings = app.state.settings
    # Before the database: a plug-in that cannot be imported is the first thing to report.
    assistant = build_assistant(settings, model=app.state.model_override)
    membership = await asyncio.to_thread(join_node, settings.DATA_DIR, settings.node_id)
    node = membership.identity
    try:
        async with open_database(settings) as database, _loop_lag_probe():
            # A new start of this node frees what its previous start held (a crash): those
            # threads answer again now, not when their leases expire.
            THREADS_FREED_AT_START.inc(await register_incarnation(database.sessionmaker, node))
            async with _serving(settings, database, node, assistant) as state:
                yield state
    finally:
        membership.close()
        mark_worker_exited()


@asynccontextmanager
async def _serving(
    settings: Settings, database: Database, node: NodeIdentity, assistant: Assistant
) -> AsyncIterator[State]:
    """Everything the app serves with, built on an open database; torn down in reverse."""
    # Refuses to serve when SEARCH_TEXT_CONFIG is not what the stored vectors use.
    search = await search_index.check_config(database.sessionmaker, settings.SEARCH_TEXT_CONFIG)
    memory_store = build_memory_store(settings, database)
    compactor = build_compactor(settings, database, memory_store, assistant.provider.model)
    turn_runner = build_turn_runner(
        settings, database, memory_store, assistant.agents, node=node, compactor=compactor
    )
    await turn_runner.startup()
    job_context = build_job_context(settings, database, memory_store, node, compactor=compactor)
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
    if search.building:  # rows from before the search migration, or a switch underway
        _resume_search_rebuild(scheduler, job_context)
    # What exists now lives as long as the process: keep it out of the garbage collector's
    # full passes, which otherwise scan ~260,000 objects (0.3 s, more on a busy machine)
    # whenever a request allocates a lot, such as an account's export. Once per process: a
    # later lifespan (tests start many apps) would freeze garbage.
    if gc.get_freeze_count() == 0:
        gc.freeze()
    yield State(
        engine=database.engine,
        sessionmaker=database.sessionmaker,
        memory_store=memory_store,
        token_service=TokenService.from_settings(settings),
        model_provider=assistant.provider,
        agents=assistant.agents,
        turn_runner=turn_runner,
        compactor=compactor,
        job_context=job_context,
        user_ids=UserIdCache(),
        scheduler=scheduler,
        node=node,
    )
    if scheduler is not None:
        scheduler.shutdown(wait=False)
    await turn_runner.aclose()
    if compactor is not None:
        await compactor.aclose()
    await off_loop(memory_store.close)  # each close checkpoints a file


def _resume_search_rebuild(scheduler: AsyncIOScheduler | None, ctx: JobContext) -> None:
    """Finish building search vectors in the background (one worker does: the job's lock)."""
    if scheduler is None:
        logger.warning(
            "Search covers new messages only until `python -m app search reindex` has run"
        )
        return
    scheduler.add_job(
        run_job,
        args=["reindex-search", ctx],
        kwargs={"trigger": "startup"},
        id="reindex-search-on-startup",
    )


@asynccontextmanager
async def _loop_lag_probe() -> AsyncIterator[None]:
    probe = LoopLagProbe()
    probe.start()
    try:
        yield
    finally:
        await probe.aclose()


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
    app.include_router(chatkit_router(get_current_user))
    include_dev_routes(app, settings)
    add_docs(app)
    add_page(app, settings)
    add_cors(app, settings)
    return app


app = create_app()
