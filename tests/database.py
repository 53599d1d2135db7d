"""Provisioning of the test database: TEST_DATABASE_URL when set, else the embedded server."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import make_url

from app import schema
from app.embedded_db import drop_database, start_embedded_sync

TEST_DATABASE_SUFFIX = "_threadkeeper_test"


@dataclass(frozen=True)
class TestDatabase:
    url: str  # SQLAlchemy URL of the migrated test database
    admin_conninfo: str  # libpq URL of the server's maintenance database

    def sibling_url(self, name: str) -> str:
        """URL of another database on the same server (for migration tests)."""
        return make_url(self.url).set(database=name).render_as_string(hide_password=False)


def _libpq(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def recreate_database(admin_conninfo: str, name: str) -> None:
    drop_database(admin_conninfo, name, recreate=True)


@contextmanager
def provision_test_database(embedded_dir: Path) -> Iterator[TestDatabase]:
    """Create `<db>_threadkeeper_test`, run every migration on it, drop it afterwards.

    Fails loudly when the server is unreachable: a database test never silently skips.
    """
    embedded = None
    base_url = os.environ.get("TEST_DATABASE_URL")
    if base_url:
        base_url = base_url.replace("postgres://", "postgresql://", 1)
        base_url = (
            make_url(base_url)
            .set(drivername="postgresql+psycopg")
            .render_as_string(hide_password=False)
        )
    else:
        embedded = start_embedded_sync(embedded_dir, database="postgres")
        base_url = embedded.url
    admin = _libpq(base_url)
    name = (make_url(base_url).database or "postgres") + TEST_DATABASE_SUFFIX
    recreate_database(admin, name)
    url = make_url(base_url).set(database=name).render_as_string(hide_password=False)
    try:
        asyncio.run(schema.upgrade_url(url))
        yield TestDatabase(url=url, admin_conninfo=admin)
    finally:
        drop_database(admin, name)
        if embedded is not None:
            embedded.stop()
