"""`python -m app users …` and `python -m app search …`: users' data and fair-use limits,
for operators."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from app.cli.common import run_with_jobs
from app.db import session_scope

users_cli = typer.Typer(no_args_is_help=True, help="Users' data: erasure, fair-use limits")
search_cli = typer.Typer(no_args_is_help=True, help="Full-text search: its configuration")


def _print(value: Any) -> None:
    if hasattr(value, "model_dump"):
        value = value.model_dump(mode="json")
    typer.echo(json.dumps(value, indent=2, default=str))


@users_cli.command()
def erase(subject: str) -> None:
    """Erase the user SUBJECT (a token's `sub`): threads, messages, tasks, memory files."""
    from app.scheduler.data_admin import erase_subject

    _print(run_with_jobs(lambda ctx: erase_subject(ctx, subject)))


Override = Annotated[
    int | None, typer.Option(min=0, help="0: unlimited; not given: the LIMIT_* setting")
]


@users_cli.command()
def limits(
    subject: str,
    turns_per_minute: Override = None,
    running_turns: Override = None,
    daily_tokens: Override = None,
    open_streams: Override = None,
) -> None:
    """Set the fair-use overrides of the user SUBJECT (exactly the options given; the
    others follow their LIMIT_* setting again), then print their usage."""
    from app.models import UserLimitsUpdate
    from app.services import limits as limit_service

    update = UserLimitsUpdate(
        turns_per_minute=turns_per_minute,
        running_turns=running_turns,
        daily_tokens=daily_tokens,
        open_streams=open_streams,
    )

    async def op(ctx: Any) -> Any:
        async with session_scope(ctx.sessionmaker) as db:
            user_id = await limit_service.user_id_for(db, subject)
            await limit_service.set_overrides(db, user_id, update)
        return await _usage(ctx, subject)

    _print(run_with_jobs(op))


@users_cli.command()
def usage(subject: str) -> None:
    """The fair-use usage and limits of the user SUBJECT (as GET /api/me/usage shows them)."""
    _print(run_with_jobs(lambda ctx: _usage(ctx, subject)))


async def _usage(ctx: Any, subject: str) -> Any:
    from app.services import limits as limit_service

    async with ctx.sessionmaker() as db:
        user_id = await limit_service.user_id_for(db, subject)
        return await limit_service.TurnLimiter(ctx.settings).usage(db, user_id, exempt=False)


@search_cli.command()
def reindex(
    force: Annotated[
        bool, typer.Option(help="Rebuild even if the configuration is unchanged")
    ] = False,
) -> None:
    """Switch the search vectors to SEARCH_TEXT_CONFIG and rebuild them (online, batched)."""
    from app.models import RunStatus
    from app.scheduler.registry import run_job

    run = run_with_jobs(lambda ctx: run_job("reindex-search", ctx, trigger="cli", force=force))
    _print({"job": run.job, "status": run.status, "counts": run.counts, "error": run.error})
    if run.status != RunStatus.SUCCEEDED:
        raise typer.Exit(1)


@search_cli.command()
def status() -> None:
    """The configuration the stored vectors use, and whether a rebuild is unfinished."""
    from app.services.search_index import read_config

    async def op(ctx: Any) -> dict[str, Any]:
        async with ctx.sessionmaker() as db:
            row = await read_config(db)
        wanted = ctx.settings.SEARCH_TEXT_CONFIG
        return {"config": row.config, "building": row.building, "setting": wanted}

    _print(run_with_jobs(op))
