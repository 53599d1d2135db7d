"""Command line: `python -m app {serve,migrate,token,chat}` (run from the repo root)."""

from __future__ import annotations

import asyncio
import sys
from typing import Annotated

import typer

from app.cli.common import load_settings_or_exit, one_line_errors
from app.cli.data import search_cli, users_cli
from app.cli.memory import sessions_cli

cli = typer.Typer(no_args_is_help=True, add_completion=False, help="Threadkeeper")
cli.add_typer(sessions_cli, name="sessions")
cli.add_typer(users_cli, name="users")
cli.add_typer(search_cli, name="search")


@cli.command()
def serve(workers: Annotated[int, typer.Option(min=1)] = 1) -> None:
    """Serve the API with uvicorn on HOST:PORT."""
    import uvicorn

    settings = load_settings_or_exit()
    from app.http_server import BoundedHttpToolsProtocol

    uvicorn.run(
        "app.main:app",
        host=settings.HOST,
        port=settings.PORT,
        workers=workers,
        log_level=settings.LOG_LEVEL.lower(),
        proxy_headers=True,
        http=BoundedHttpToolsProtocol,
        timeout_keep_alive=settings.HTTP_KEEPALIVE_SECONDS,
        # SIGTERM ends the process within SHUTDOWN_GRACE_SECONDS: open streams get the first
        # half, then the lifespan gives turns still running the second half (turn_runner).
        timeout_graceful_shutdown=max(1, settings.SHUTDOWN_GRACE_SECONDS // 2),
    )


@cli.command()
def migrate(revision: str = "head") -> None:
    """Apply database migrations (starts the embedded database when DATABASE_URL is unset)."""
    from app import schema
    from app.bootstrap import open_database
    from app.logging import configure_logging

    settings = load_settings_or_exit()
    configure_logging(settings)

    async def _migrate() -> None:
        async with open_database(settings, migrate=revision == "head") as database:
            if revision != "head":
                await schema.upgrade(database.engine, revision)
            typer.echo(f"Database schema at {await schema.current_revision(database.engine)}")

    with one_line_errors():
        asyncio.run(_migrate())


@cli.command()
def token(
    user: Annotated[str, typer.Option(help="The subject (`sub`) the token names")],
    admin: Annotated[bool, typer.Option(help="Add the admin claim")] = False,
) -> None:
    """Print a signed bearer token (and nothing else) for USER."""
    from app.auth import TokenService

    settings = load_settings_or_exit()
    try:
        typer.echo(TokenService.from_settings(settings).issue(user, admin=admin))
    except RuntimeError as e:
        typer.echo(str(e), err=True)
        raise typer.Exit(2) from None


@cli.command()
def chat(
    user: Annotated[str, typer.Option(help="Who you are (the token's subject)")] = "me",
    url: Annotated[str | None, typer.Option(help="Server URL (default: http://HOST:PORT)")] = None,
    thread: Annotated[str | None, typer.Option(help="Thread id to continue")] = None,
    new: Annotated[bool, typer.Option(help="Start a new thread")] = False,
) -> None:
    """Chat with a running server from the terminal (streams replies as they arrive)."""
    import httpx

    from app.auth import TokenService
    from app.cli.chat_client import ChatClient, run_repl

    settings = load_settings_or_exit()
    base_url = url or f"http://{settings.HOST}:{settings.PORT}"
    client = ChatClient(base_url, TokenService.from_settings(settings).issue(user))
    try:
        if thread:
            client.thread_id = thread
        elif new:
            client.new_thread("Terminal chat")
        else:
            client.resume_or_create()
        run_repl(client)
    except httpx.ConnectError:
        typer.echo(f"No server at {base_url}: start it with `make run`", err=True)
        raise typer.Exit(1) from None
    finally:
        client.close()


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
