"""`python -m app users …` and `python -m app search …`: users' data, for operators."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from app.cli.common import run_with_jobs

users_cli = typer.Typer(no_args_is_help=True, help="Users' data: erasure")
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
