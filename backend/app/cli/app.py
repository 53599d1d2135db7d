"""Command line: `python -m app {serve,migrate,token,chat}` (run from the repo root)."""

from __future__ import annotations

import asyncio
import sys
from typing import Annotated

import httpx
import typer

# typer 0.29 vendors click: the error it raises to show help when no command is given
# (`python -m app`) exists only there.
from typer._click.exceptions import NoArgsIsHelpError

from app.cli.common import load_settings_or_exit, one_line_errors, usage_error_line
from app.cli.data import search_cli, users_cli
from app.cli.memory import sessions_cli
from app.config import Settings

cli = typer.Typer(no_args_is_help=True, add_completion=False, help="Threadkeeper")
cli.add_typer(sessions_cli, name="sessions")
cli.add_typer(users_cli, name="users")
cli.add_typer(search_cli, name="search")


@cli.command()
def serve(workers: Annotated[int, typer.Option(min=1)] = 1) -> None:
    """Serve the API with uvicorn on HOST:PORT (several workers share one node: DATA_DIR)."""
    from app.cli.serve import serve as serve_until_stopped

    serve_until_stopped(load_settings_or_exit(), workers=workers)


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
    ctx: typer.Context,
    user: Annotated[str, typer.Option(help="The subject (`sub`) the token names")],
    admin: Annotated[bool, typer.Option(help="Add the admin claim")] = False,
) -> None:
    """Print a signed bearer token (and nothing else) for USER."""
    settings = load_settings_or_exit()
    typer.echo(_issue_token(ctx, settings, user, admin=admin))


def _issue_token(ctx: typer.Context, settings: Settings, user: str, *, admin: bool) -> str:
    """A token the server accepts; a subject it would refuse (empty, say) is a usage error."""
    from app.auth import MAX_SUBJECT_CHARS, TokenService
    from app.errors import UnauthorizedError

    if not user.strip():
        raise typer.BadParameter(
            "the user name is empty; name one, e.g. --user alice", ctx=ctx, param_hint="'--user'"
        )
    if len(user) > MAX_SUBJECT_CHARS:
        raise typer.BadParameter(
            f"the user name is over {MAX_SUBJECT_CHARS} characters", ctx=ctx, param_hint="'--user'"
        )
    try:
        tokens = TokenService.from_settings(settings)
        token = tokens.issue(user, admin=admin)
        # The server's own check, so a token it would answer 401 is never printed.
        tokens.verify(token)
    except RuntimeError as e:
        typer.echo(str(e), err=True)
        raise typer.Exit(2) from None
    except UnauthorizedError as e:
        raise typer.BadParameter(e.message, ctx=ctx, param_hint="'--user'") from None
    return token


@cli.command()
def chat(
    ctx: typer.Context,
    user: Annotated[str, typer.Option(help="Who you are (the token's subject)")] = "me",
    url: Annotated[str | None, typer.Option(help="Server URL (default: http://HOST:PORT)")] = None,
    thread: Annotated[str | None, typer.Option(help="Thread id to continue")] = None,
    new: Annotated[bool, typer.Option(help="Start a new thread")] = False,
) -> None:
    """Chat with a running server from the terminal (streams replies as they arrive)."""
    from app.cli.chat_client import ChatClient, run_repl

    settings = load_settings_or_exit()
    base_url = url or f"http://{settings.HOST}:{settings.PORT}"
    client = ChatClient(base_url, _issue_token(ctx, settings, user, admin=False))
    try:
        if thread:
            client.thread_id = thread
        elif new:
            client.new_thread("Terminal chat")
        else:
            client.resume_or_create()
        run_repl(client)
    except httpx.ConnectError:
        typer.echo(
            f"No server at {base_url} (HOST, PORT): start it with `make run`, "
            "with the same HOST and PORT (keep them in .env)",
            err=True,
        )
        raise typer.Exit(1) from None
    except httpx.HTTPStatusError as e:
        typer.echo(_refusal_line(settings, base_url, e.response), err=True)
        raise typer.Exit(1) from None
    finally:
        client.close()


def _refusal_line(settings: Settings, base_url: str, response: httpx.Response) -> str:
    """Why the server refused `make chat`; a 401 says which secret signed the token."""
    from app.auth import dev_secret_path

    detail = _detail(response)
    if response.status_code != 401:
        return f"The server at {base_url} answered {response.status_code}: {detail}"
    if settings.AUTH_JWT_SECRET:
        source = "AUTH_JWT_SECRET"
    else:
        source = (
            f"the development secret in {dev_secret_path(settings)} (DATA_DIR={settings.DATA_DIR})"
        )
    return (
        f"The server at {base_url} refused the token (401: {detail}). It was signed with "
        f"{source}: run `make chat` with the same DATA_DIR (or AUTH_JWT_SECRET) as `make run`; "
        "keep them in .env, which both read"
    )


def _detail(response: httpx.Response) -> str:
    try:
        return str(response.json().get("detail"))
    except ValueError:
        return response.text.strip()[:200] or response.reason_phrase


def main(argv: list[str] | None = None) -> int:
    try:
        # Without standalone mode, typer returns an Exit's code instead of raising it, and
        # leaves its usage errors to us: they are one line here, never a traceback.
        code = cli(args=argv, standalone_mode=False)
    except typer.Exit as e:
        return e.exit_code
    except (typer.Abort, KeyboardInterrupt):
        return 130
    except NoArgsIsHelpError as e:
        e.show()
        return e.exit_code
    except typer.TyperException as e:
        typer.echo(usage_error_line(e), err=True)
        return int(getattr(e, "exit_code", 2))
    return code if isinstance(code, int) else 0


if __name__ == "__main__":
    sys.exit(main())
