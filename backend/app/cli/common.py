"""What every CLI command shares: settings that fail in one line, and the service's parts.

Commands build what they need through `app.bootstrap`, exactly as the server's lifespan
does (same database settings, same memory store), and never import the ASGI app.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import TYPE_CHECKING, TypeVar

import typer
from sqlalchemy.exc import DBAPIError

from app.config import ConfigError, Settings, load_settings
from app.embedded_db import EmbeddedDatabaseError
from app.errors import AppError

if TYPE_CHECKING:
    from app.scheduler.context import JobContext

_T = TypeVar("_T")


def usage_error_line(error: typer.TyperException) -> str:
    """A usage error (a bad or missing argument, an unknown command) as one line."""
    message = " ".join(error.format_message().split())
    ctx = getattr(error, "ctx", None)
    hint = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
    return f"Error: {message}{hint}"


def load_settings_or_exit() -> Settings:
    """The settings, or one line naming the bad setting and exit code 2."""
    try:
        return load_settings()
    except ConfigError as e:
        typer.echo(str(e), err=True)
        raise typer.Exit(2) from None


@asynccontextmanager
async def job_context(settings: Settings) -> AsyncIterator[JobContext]:
    """Database (embedded if DATABASE_URL is unset), memory store and job context."""
    # Imported on use: they load the Agents SDK, which a usage error never needs.
    from app.bootstrap import (
        build_compactor,
        build_job_context,
        build_memory_store,
        configure_tracing,
        open_database,
        resolve_model,
    )
    from app.logging import configure_logging
    from app.memory import off_loop

    configure_logging(settings)
    configure_tracing(settings)  # a summary the sweep makes is traced only if opted in
    async with open_database(settings) as database:
        store = build_memory_store(settings, database)
        compactor = build_compactor(settings, database, store, resolve_model(settings))
        try:
            yield build_job_context(settings, database, store, compactor=compactor)
        finally:
            if compactor is not None:
                await compactor.aclose()
            await off_loop(store.close)  # each close checkpoints a file


@contextmanager
def one_line_errors() -> Iterator[None]:
    """Turn what stops a command (bad settings, no database, a domain error) into one line.

    Exit codes: 2 for a misconfiguration (like typer's own usage errors), 1 otherwise (the
    database cannot be reached, the embedded one cannot start under DATA_DIR, ...).
    """
    try:
        yield
    except ConfigError as e:
        typer.echo(str(e), err=True)
        raise typer.Exit(2) from None
    except AppError as e:
        typer.echo(f"{type(e).__name__}: {e.message}", err=True)
        raise typer.Exit(1) from None
    except EmbeddedDatabaseError as e:
        typer.echo(str(e), err=True)
        raise typer.Exit(1) from None
    except (DBAPIError, OSError) as e:
        reason = str(getattr(e, "orig", None) or e).strip().splitlines()[0]
        typer.echo(f"Cannot use the database (DATABASE_URL): {reason}", err=True)
        raise typer.Exit(1) from None


def run_with_jobs(
    operation: Callable[[JobContext], Awaitable[_T]], *, progress_label: str | None = None
) -> _T:
    """Run `operation` against the service's stores; a domain error is one line, exit 1."""
    from rich.progress import Progress

    settings = load_settings_or_exit()

    async def _main() -> _T:
        async with job_context(settings) as ctx:
            if progress_label is None:
                return await operation(ctx)
            with Progress(transient=True) as progress:
                task = progress.add_task(progress_label, total=None)

                def update(done: int, total: int) -> None:
                    progress.update(task, completed=done, total=total)

                return await operation(dataclasses.replace(ctx, on_progress=update))

    with one_line_errors():
        return asyncio.run(_main())
