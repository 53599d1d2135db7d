"""Where the benchmark runs: the PostgreSQL it uses, scratch space and the machine's identity.

The database comes from BENCH_DATABASE_URL, else TEST_DATABASE_URL, else the embedded server
under data/bench-postgres, so `make bench` works on a fresh clone with nothing installed. Every
run works in a scratch database (`<database>_threadkeeper_bench`, named after the URL's
database like the tests' own, so runs from different checkouts on one server do not drop each
other's; recreated and migrated with the project's own Alembic migrations) and a scratch
directory, both removed at the end.
"""

from __future__ import annotations

import asyncio
import os
import platform
import shutil
import sqlite3
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy.engine import make_url

SCRATCH_SUFFIX = "_threadkeeper_bench"
REPO_ROOT = Path(__file__).resolve().parent.parent
EMBEDDED_DIR = REPO_ROOT / "data" / "bench-postgres"
OUT_DIR = REPO_ROOT / "data" / "bench"

# The service is measured without fair-use limits (one bench user sends far more turns than a
# person would); workload 14 measures what the limits cost.
UNLIMITED = {
    "LIMIT_TURNS_PER_MINUTE": "0",
    "LIMIT_RUNNING_TURNS": "0",
    "LIMIT_DAILY_TOKENS": "0",
    "LIMIT_OPEN_STREAMS": "0",
}


@dataclass(frozen=True)
class Database:
    """The scratch database: a SQLAlchemy URL (psycopg 3) and a libpq URL for psycopg."""

    url: str
    conninfo: str
    source: str


def _sqlalchemy_url(url: str) -> str:
    url = url.replace("postgres://", "postgresql://", 1)
    return make_url(url).set(drivername="postgresql+psycopg").render_as_string(hide_password=False)


def libpq(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@contextmanager
def scratch_database() -> Iterator[Database]:
    """Create and migrate `threadkeeper_bench`; drop it (and release the server) afterwards."""
    from app.embedded_db import drop_database, start_embedded_sync
    from app.schema import upgrade_url

    embedded = None
    base = os.environ.get("BENCH_DATABASE_URL") or os.environ.get("TEST_DATABASE_URL")
    source = "BENCH_DATABASE_URL" if os.environ.get("BENCH_DATABASE_URL") else "TEST_DATABASE_URL"
    if base:
        base = _sqlalchemy_url(base)
    else:
        embedded = start_embedded_sync(EMBEDDED_DIR, database="postgres")
        base, source = embedded.url, "embedded (data/bench-postgres)"
    admin = libpq(base)
    scratch = (make_url(base).database or "postgres") + SCRATCH_SUFFIX
    url = make_url(base).set(database=scratch).render_as_string(hide_password=False)
    try:
        drop_database(admin, scratch, recreate=True)
        asyncio.run(upgrade_url(url))
        yield Database(url=url, conninfo=libpq(url), source=source)
    finally:
        try:
            drop_database(admin, scratch)
        finally:
            if embedded is not None:
                embedded.stop()


@contextmanager
def scratch_dir() -> Iterator[Path]:
    """A fresh `data/bench/tmp-*` directory, removed at the end whatever happens."""
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix="tmp-", dir=OUT_DIR)).resolve()
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def machine() -> dict[str, Any]:
    """What the figures were measured on; they only compare within one run and machine."""
    from importlib.metadata import version

    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {
        "nproc": os.cpu_count(),
        "affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "loadavg_at_start": load,
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "sqlite": sqlite3.sqlite_version,
        "platform": platform.platform(),
        "openai_agents": version("openai-agents"),
        "sqlalchemy": version("sqlalchemy"),
        "psycopg": version("psycopg"),
    }


def server_version(conninfo: str) -> str:
    with psycopg.connect(conninfo) as conn:
        row = conn.execute("SHOW server_version").fetchone()
    return str(row[0]) if row else "?"
