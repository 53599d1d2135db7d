"""Drill (F6): a full disk or no free descriptors is an outage of a resource, not corruption.

Before the fix, "database or disk is full" and "unable to open database file" counted as a
corrupt memory file: a healthy file was quarantined, the rebuild failed too, the client got a
plain-text 500 saying `retryable: false`, `/health/ready` said ok, and memory drifted from
the log. Now: files are left alone (nothing in quarantine), the client gets a 503 with
Retry-After (or a retryable `memory_unavailable` error event), `/health/ready` reports the
disk, and once the resource is back the thread works and memory equals the log.

The memory directory is a small tmpfs the drill mounts (the drills run as root), filled
with a ballast file; descriptors are taken away with prlimit on the server process.
"""

from __future__ import annotations

import contextlib
import os
import resource
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.drills.conftest import ServerFactory
from tests.drills.harness import bearer, report
from tests.drills.stores import Log, memory_path, read_memory, user_items
from tests.drills.turns import client_for, create_thread, stream_turn

TMPFS_MB = 8
MIN_FREE_MB = 2


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "small-disk"
    mount.mkdir()
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={TMPFS_MB}m", "tmpfs", str(mount)], check=True
    )
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(disk: Path, *, leave_bytes: int) -> Path:
    """A ballast file that leaves about `leave_bytes` free on `disk`."""
    ballast = disk / "ballast"
    free = os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize
    with ballast.open("ab") as f:
        f.write(b"\0" * max(0, free - leave_bytes))
    with contextlib.suppress(OSError), ballast.open("ab") as f:  # and the last blocks, for 0
        while leave_bytes == 0:
            f.write(b"\0" * 4096)
            f.flush()
            os.fsync(f.fileno())
    return ballast


def quarantined(disk: Path) -> list[Path]:
    return [p for p in (disk / "_quarantine").rglob("*") if p.is_file()]


class TestResourceExhaustion:
    @pytest.mark.drill
    async def test_a_full_disk_is_a_retryable_503_and_memory_stays_the_log(
        self, server_factory: ServerFactory, small_disk: Path, record_property
    ) -> None:
        server = server_factory(
            AGENT_SESSION_DIR=str(small_disk), AGENT_SESSION_MIN_FREE_MB=str(MIN_FREE_MB)
        )
        server.start()
        subject = f"disk-{uuid.uuid4().hex[:8]}"
        headers = bearer(subject)
        figures = []
        async with client_for(server.base_url) as http:
            thread = await create_thread(http, headers)
            assert (await stream_turn(http, thread, "remember that disks fill", headers)).ok

            # Below the threshold: refused before anything is written; ready says why.
            ballast = fill(small_disk, leave_bytes=MIN_FREE_MB * 1024 * 1024 // 2)
            ready = await http.get("/health/ready")
            refused = await stream_turn(http, thread, "remember that this waits", headers)
            figures.append(f"low disk: ready {ready.status_code}, send {refused.status}")
            assert ready.status_code == 503
            assert "low on disk space" in ready.json()["components"]["memory_dir"]
            assert refused.status == 503, refused.describe()
            assert refused.body["error"] == "MemoryUnavailableError"

            # Truly full, with the check off and the file open: SQLite fails mid-turn.
            ballast.unlink()
            server.stop()
            server.extra_env["AGENT_SESSION_MIN_FREE_MB"] = "0"
            server.start()
            assert (await stream_turn(http, thread, "remember that space is back", headers)).ok
            fill(small_disk, leave_bytes=0)
            full = await stream_turn(
                http, thread, "remember that the disk is full " + "x" * 20_000, headers
            )
            error = full.first("error") or {}
            figures.append(f"full disk mid-turn: status {full.status}, error {error}")
            assert full.status == 200, full.describe()
            assert error.get("code") == "memory_unavailable", full.describe()
            assert error.get("retryable") is True
            assert quarantined(small_disk) == []

            (small_disk / "ballast").unlink()
            again = await stream_turn(http, thread, "what did I ask you to remember?", headers)
            assert again.ok, again.describe()
        server.stop()
        log = Log(server.database_url)
        path = memory_path(small_disk, log.user_id(subject), thread)
        in_memory, in_log = user_items(read_memory(path)), log.user_texts(thread)
        figures.append(f"after: memory has {len(in_memory)} turns, the log {len(in_log)}")
        report(record_property, "full_disk_figures", "; ".join(figures))
        assert in_memory == in_log
        assert quarantined(small_disk) == []

    @pytest.mark.drill
    async def test_out_of_descriptors_is_a_503_not_corruption(
        self, server_factory: ServerFactory, record_property
    ) -> None:
        server = server_factory()
        server.start()
        assert server.proc is not None
        subject = f"fds-{uuid.uuid4().hex[:8]}"
        headers = bearer(subject)
        async with client_for(server.base_url) as http:
            threads = [await create_thread(http, headers) for _ in range(3)]
            assert (await stream_turn(http, threads[0], "remember that fds run out", headers)).ok
            open_now = len(os.listdir(f"/proc/{server.proc.pid}/fd"))
            soft, hard = resource.prlimit(server.proc.pid, resource.RLIMIT_NOFILE)
            # No room for a new memory file (3 descriptors), with the connections kept.
            resource.prlimit(server.proc.pid, resource.RLIMIT_NOFILE, (open_now + 1, hard))
            try:
                starved = await stream_turn(http, threads[1], "remember that none left", headers)
            finally:
                resource.prlimit(server.proc.pid, resource.RLIMIT_NOFILE, (soft, hard))
            again = await stream_turn(http, threads[1], "remember that they came back", headers)
        server.stop()
        error = starved.first("error") or {}
        report(
            record_property,
            "descriptor_figures",
            f"out of descriptors: status {starved.status}, body {starved.body}, error {error}; "
            f"afterwards {again.status}",
        )
        assert starved.status == 503 or error.get("code") == "memory_unavailable", (
            starved.describe()
        )
        if starved.status == 503:
            assert starved.body["error"] == "MemoryUnavailableError"
        assert again.ok, again.describe()
        assert quarantined(server.session_dir) == []
        log = Log(server.database_url)
        path = memory_path(server.session_dir, log.user_id(subject), threads[1])
        assert user_items(read_memory(path)) == log.user_texts(threads[1])
