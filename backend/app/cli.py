"""Command line: `python -m app {serve,migrate,token,chat}` (run from the repo root)."""

from __future__ import annotations

import asyncio
import sys
from typing import Annotated

import typer

from app.config import ConfigError, Settings, load_settings

cli = typer.Typer(no_args_is_help=True, add_completion=False, help="Threadkeeper")


def _settings() -> Settings:
    try:
        return load_settings()
    except ConfigError as e:
        typer.echo(str(e), err=True)
        raise typer.Exit(2) from None


@cli.command()
def serve(workers: Annotated[int, typer.Option(min=1)] = 1) -> None:
    """Serve the API with uvicorn on HOST:PORT."""
    import uvicorn

    settings = _settings()
    uvicorn.run(
        "app.main:app",
        host=settings.HOST,
        port=settings.PORT,
        workers=workers,
        log_level=settings.LOG_LEVEL.lower(),
        proxy_headers=True,
    )


@cli.command()
def migrate(revision: str = "head") -> None:
    """Apply database migrations (starts the embedded database when DATABASE_URL is unset)."""
    from app import schema
    from app.logging import configure_logging
    from app.main import ensure_schema, open_database

    settings = _settings()
    configure_logging(settings)

    async def _migrate() -> None:
        engine, embedded = await open_database(settings)
        try:
            if revision == "head":
                await ensure_schema(engine, migrate=True)
            else:
                await schema.upgrade(engine, revision)
            typer.echo(f"Database schema at {await schema.current_revision(engine)}")
        finally:
            await engine.dispose()
            if embedded is not None:
                embedded.stop()

    asyncio.run(_migrate())


@cli.command()
def token(
    user: Annotated[str, typer.Option(help="The subject (`sub`) the token names")],
    admin: Annotated[bool, typer.Option(help="Add the admin claim")] = False,
) -> None:
    """Print a signed bearer token (and nothing else) for USER."""
    from app.auth import TokenService

    settings = _settings()
    try:
        typer.echo(TokenService.from_settings(settings).issue(user, admin=admin))
    except RuntimeError as e:
        typer.echo(str(e), err=True)
        raise typer.Exit(2) from None


def main(argv: list[str] | None = None) -> int:
    try:
        # Without standalone mode, click returns an Exit's code instead of raising it.
        code = cli(args=argv, standalone_mode=False)
    except typer.Exit as e:
        return e.exit_code
    except (typer.Abort, KeyboardInterrupt):
        return 130
    except Exception as e:
        import click

        if isinstance(e, click.ClickException):
            e.show()
            return e.exit_code
        raise
    return code if isinstance(code, int) else 0


if __name__ == "__main__":
    sys.exit(main())
