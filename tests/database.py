"""Provisioning of the test database: TEST_DATABASE_URL when set, else the embedded server."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql
from sqlalchemy.engine import make_url

from app import schema
from app.embedded_db import drop_database, start_embedded_sync

TEST_DATABASE_SUFFIX = "_threadkeeper_test"


@dataclass(frozen=True)
class TestDatabase:
    url: str  # SQLAlchemy URL of the migrated test database
    admin_conninfo: str  # libpq URL of the server's maintenance database
    template: str  # a migrated database nobody connects to: the source of private copies

    def sibling_url(self, name: str) -> str:
        """URL of another database on the same server (for migration tests)."""
        return make_url(self.url).set(database=name).render_as_string(hide_password=False)

    @contextmanager
    def private_copy(self) -> Iterator[str]:
        """A migrated database of one test's own (a copy of the template), dropped after.

        For tests whose jobs look at every thread (cleanup, prune, stats, verify): on a
        database of their own their counts are exact, not "at least what I created".
        """
        name = f"{self.template[:40]}_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.admin_conninfo, autocommit=True) as conn:
            conn.execute(
                sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                    sql.Identifier(name), sql.Identifier(self.template)
                )
            )
        try:
            yield self.sibling_url(name)
        finally:
            drop_database(self.admin_conninfo, name)


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
    template = name + "_template"
    for database in (name, template):
        recreate_database(admin, database)
    url = make_url(base_url).set(database=name).render_as_string(hide_password=False)
    try:
        asyncio.run(schema.upgrade_url(url))
        asyncio.run(
            schema.upgrade_url(make_url(url).set(database=template).render_as_string(False))
        )
        yield TestDatabase(url=url, admin_conninfo=admin, template=template)
    finally:
        for database in (name, template):
            drop_database(admin, database)
        if embedded is not None:
            embedded.stop()
