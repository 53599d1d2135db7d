"""The FastAPI application: `create_app(settings)` and the lifespan that owns every resource."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TypedDict

from agents.memory import SessionSettings
from agents.models.interface import Model
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app import schema
from app.api import health, metrics
from app.api.dev import include_dev_routes
from app.api.router import api_router
from app.assistant.agent import build_agent
from app.assistant.memory import AgentMemoryStore
from app.auth import TokenService
from app.config import ConfigError, Settings, get_settings
from app.cors import add_cors
from app.db import SessionMaker, create_engine, create_sessionmaker, redact_url
from app.embedded_db import EmbeddedPostgres, start_embedded
from app.errors import register_exception_handlers
from app.logging import configure_logging
from app.metrics import MetricsMiddleware
from app.middleware import BodySizeLimitMiddleware
from app.scheduler.jobs import JobContext
from app.scheduler.registry import build_scheduler, run_job
from app.services.chat import TurnRunner
from app.services.users import UserIdCache
from app.web.docs import add_docs
from app.web.page import add_page

logger = logging.getLogger(__name__)

# Any fixed 64-bit number: it serializes concurrent migrations from several workers.
MIGRATION_LOCK_ID = 7_341_902_118


class State(TypedDict):
    engine: AsyncEngine
    sessionmaker: SessionMaker
    memory_store: AgentMemoryStore
    token_service: TokenService
    turn_runner: TurnRunner
    job_context: JobContext
    user_ids: UserIdCache
    scheduler: AsyncIOScheduler | None


async def ensure_schema(engine: AsyncEngine, *, migrate: bool) -> None:
    """Bring the schema to head, or refuse to start when that is not allowed.

    Raises:
        ConfigError: the database is behind and AUTO_MIGRATE is off.
    """
    if await schema.is_at_head(engine):
        return
    if not migrate:
        current = await schema.current_revision(engine)
        raise ConfigError(
            f"Database schema is at {current or 'an empty database'}, the code needs "
            f"{schema.head_revision()}: run `make migrate` (or set AUTO_MIGRATE=true)"
        )
    async with engine.connect() as conn:
        # Held on one connection while migrating, so a second worker waits, then sees head.
        await conn.execute(text("SELECT pg_advisory_lock(:id)"), {"id": MIGRATION_LOCK_ID})
        try:
            if not await schema.is_at_head(engine):
                logger.info("Migrating the database schema to %s", schema.head_revision())
                await schema.upgrade(engine)
        finally:
            await conn.execute(text("SELECT pg_advisory_unlock(:id)"), {"id": MIGRATION_LOCK_ID})


async def open_database(settings: Settings) -> tuple[AsyncEngine, EmbeddedPostgres | None]:
    """Connect to DATABASE_URL, or start the embedded server when it is unset."""
    embedded = None
    if settings.DATABASE_URL:
        url = settings.DATABASE_URL
        logger.info("Using PostgreSQL at %s", redact_url(url))
    else:
        embedded = await start_embedded(settings.embedded_pgdata_dir)
        url = embedded.url
    engine = create_engine(
        url,
        pool_size=settings.DATABASE_POOL_SIZE,
        connect_timeout_s=settings.DATABASE_CONNECT_TIMEOUT_SECONDS,
    )
    return engine, embedded


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[State]:
    settings: Settings = app.state.settings
    engine, embedded = await open_database(settings)
    try:
        await ensure_schema(engine, migrate=embedded is not None or settings.AUTO_MIGRATE)
        sessionmaker = create_sessionmaker(engine)
        memory_store = AgentMemoryStore(
            settings.agent_session_dir,
            busy_timeout_ms=settings.AGENT_SESSION_BUSY_TIMEOUT_MS,
            session_settings=SessionSettings(limit=settings.AGENT_SESSION_READ_LIMIT),
            pool_size=settings.AGENT_SESSION_POOL_SIZE,
        )
        agent = build_agent(settings, model=app.state.model_override)
        logger.info("Agent model: %s (%s)", settings.model_provider, agent.model)
        turn_runner = TurnRunner(
            sessionmaker=sessionmaker, memory_store=memory_store, agent=agent, settings=settings
        )
        job_context = JobContext(
            sessionmaker=sessionmaker, memory_store=memory_store, settings=settings
        )
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
            engine=engine,
            sessionmaker=sessionmaker,
            memory_store=memory_store,
            token_service=TokenService.from_settings(settings),
            turn_runner=turn_runner,
            job_context=job_context,
            user_ids=UserIdCache(),
            scheduler=scheduler,
        )
        if scheduler is not None:
            scheduler.shutdown(wait=False)
        await turn_runner.aclose()
        memory_store.close()
    finally:
        await engine.dispose()
        if embedded is not None:
            embedded.stop()


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
