"""`python -m app serve` (`make run`): what can stop the server fails first, in one line.

uvicorn starts the app's lifespan (database, migrations, scheduler) before it binds the port,
so a port in use used to end in ninety lines of tracebacks from a lifespan torn down
mid-start. Here the address is bound first, then the directories under DATA_DIR and the
database are checked, each failure one line naming the setting to change; only then does
uvicorn start, on the socket already bound.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import typer
import uvicorn

from app.cli.common import one_line_errors
from app.config import Settings
from app.embedded_db import EmbeddedPostgres, start_embedded_sync

# uvicorn's exit code when the app does not start.
STARTUP_FAILURE_EXIT_CODE = 3
_SETTINGS_HOME = "in .env, which `make run`, `make chat` and `make token` all read"


def serve(settings: Settings, *, workers: int) -> None:
    """Bind HOST:PORT, open the database, then serve until stopped (SIGINT/SIGTERM)."""
    from uvicorn.supervisors import Multiprocess

    from app.assistant.registry import check_factories
    from app.http_server import BoundedHttpToolsProtocol
    from app.logging import configure_logging
    from app.metrics import prepare_multiprocess

    configure_logging(settings)
    with one_line_errors():  # an AGENTS factory that cannot be imported: one line, exit 2
        check_factories(settings)
    listener = _bind_or_exit(settings.HOST, settings.PORT)
    _check_data_dirs_or_exit(settings)
    embedded = _open_database_or_exit(settings)
    if workers > 1:
        # Before uvicorn starts the workers: they inherit the directory, so every worker's
        # counters are merged in /metrics whichever worker answers the scrape.
        prepare_multiprocess(settings.DATA_DIR / "metrics")
    config = uvicorn.Config(
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
    server = _Server(config, on_started=embedded.stop if embedded else None)
    host = f"[{settings.HOST}]" if ":" in settings.HOST else settings.HOST
    logging.getLogger("uvicorn.error").info(
        "Uvicorn running on http://%s:%d (Press CTRL+C to quit)", host, settings.PORT
    )
    try:
        if workers > 1:
            Multiprocess(config, sockets=[listener]).run()
        else:
            server.run(sockets=[listener])
    except KeyboardInterrupt:
        pass
    finally:
        listener.close()
        if embedded is not None:
            embedded.stop()
    if workers == 1 and not server.started:
        sys.exit(STARTUP_FAILURE_EXIT_CODE)


class _Server(uvicorn.Server):
    """uvicorn's server, calling `on_started` once the app's lifespan has started.

    With one worker the lifespan holds its own handle on the embedded database by then, so
    `serve` lets go of its own: the lifespan's shutdown stops the database, as before, even
    on SIGTERM (which uvicorn re-raises once it has shut down, ending the process at once).
    """

    def __init__(self, config: uvicorn.Config, on_started: Callable[[], None] | None) -> None:
        super().__init__(config)
        self._on_started = on_started

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started and self._on_started is not None:
            self._on_started()


def _bind_or_exit(host: str, port: int) -> socket.socket:
    """The listening address, bound as uvicorn binds it; or one line naming HOST/PORT."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        if e.errno == errno.EADDRINUSE:
            problem = f"port {port} is already in use (is `make run` already running?)"
            fix = f"stop what uses it, or set PORT to a free port {_SETTINGS_HOME}"
        else:
            problem = f"{e.strerror or e}"
            fix = f"set HOST to an address of this machine (127.0.0.1, 0.0.0.0) {_SETTINGS_HOME}"
        typer.echo(f"Cannot serve on {host}:{port} (HOST, PORT): {problem}; {fix}", err=True)
        raise typer.Exit(1) from None
    sock.set_inheritable(True)
    return sock


def _check_data_dirs_or_exit(settings: Settings) -> None:
    """What the lifespan writes under DATA_DIR is writable; or one line naming the setting."""
    from app.auth import dev_secret_path, resolve_secret
    from app.bootstrap import build_file_store

    try:
        build_file_store(settings).close()
    except OSError as e:
        typer.echo(
            f"Cannot use the memory directory {settings.agent_session_dir} (AGENT_SESSION_DIR, "
            f"default DATA_DIR/sessions): {e.strerror or e}",
            err=True,
        )
        raise typer.Exit(1) from None
    try:
        resolve_secret(settings)  # in development, generated under DATA_DIR on first use
    except OSError as e:
        typer.echo(
            f"Cannot keep the development JWT secret in {dev_secret_path(settings)} "
            f"(DATA_DIR): {e.strerror or e}; set DATA_DIR to a writable directory "
            "(or AUTH_JWT_SECRET)",
            err=True,
        )
        raise typer.Exit(1) from None


def _open_database_or_exit(settings: Settings) -> EmbeddedPostgres | None:
    """Open the database as the lifespan will (and migrate it), failing in one line.

    Without DATABASE_URL the embedded server started here stays up until `serve` returns
    (the caller stops the handle), so the lifespan attaches to it instead of starting it.
    """
    from app.bootstrap import open_database

    async def _check() -> None:
        async with open_database(settings):
            pass

    embedded = None
    with one_line_errors(), _without_record("app.bootstrap", "Using PostgreSQL at"):
        if not settings.DATABASE_URL:
            embedded = start_embedded_sync(settings.embedded_pgdata_dir)
        try:
            asyncio.run(_check())
        except BaseException:
            if embedded is not None:
                embedded.stop()
            raise
    return embedded


@contextmanager
def _without_record(logger_name: str, prefix: str) -> Iterator[None]:
    """Drop `logger_name`'s records starting with `prefix` meanwhile: the lifespan says
    which database it uses a moment later, and once is enough."""

    def _keep(record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(prefix)

    logger = logging.getLogger(logger_name)
    logger.addFilter(_keep)
    try:
        yield
    finally:
        logger.removeFilter(_keep)
