"""Fixtures of the drills: a fresh database per drill module and real server processes."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from tests.database import TestDatabase, drop_database, recreate_database
from tests.drills.harness import ServerProcess


def pytest_configure(config: pytest.Config) -> None:
    # Also declared in pyproject; registering here lets `--strict-markers` runs work either way.
    config.addinivalue_line("markers", "drill: slow drills against real server processes")


@pytest.fixture(scope="module")
def drill_database(test_database: TestDatabase, request: pytest.FixtureRequest) -> Iterator[str]:
    """A new, empty database for this drill module; the server migrates it (AUTO_MIGRATE)."""
    module = request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_")
    name = f"{make_url(test_database.url).database}_drill_{module}"[:63]
    recreate_database(test_database.admin_conninfo, name)
    try:
        yield test_database.sibling_url(name)
    finally:
        drop_database(test_database.admin_conninfo, name)


ServerFactory = Callable[..., ServerProcess]


@pytest.fixture(scope="module")
def server_factory(
    drill_database: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerFactory]:
    """Make servers (not started) on the drill database; every one is stopped at the end."""
    servers: list[ServerProcess] = []

    def make(
        *,
        workers: int = 1,
        database_url: str | None = None,
        data_dir: Path | None = None,
        **env: str,
    ) -> ServerProcess:
        server = ServerProcess(
            database_url=database_url or drill_database,
            data_dir=data_dir or tmp_path_factory.mktemp("drill-server"),
            workers=workers,
            extra_env=env,
        )
        servers.append(server)
        return server

    try:
        yield make
    finally:
        for server in servers:
            server.stop()
