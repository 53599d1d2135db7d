"""Drill (F3): memory that fell behind the log is found and repaired, never trusted.

Two scenes hostile testing used to leave broken forever (the agent answering from half its
history, and `sessions verify` and the reconcile job reporting nothing):

1. Two facts, a graceful restart, two more facts, kill -9, the `-wal` deleted: memory holds
   the first two turns while the log holds four.
2. An older copy of the memory file restored (the operator's way: a copy moved over the file,
   its `-wal`/`-shm` removed) under a running server.

`sessions verify` must report each thread as diverged (exit 1), and the next turn must answer
from all four facts.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.drills.conftest import ServerFactory
from tests.drills.harness import REPO_ROOT, ServerProcess, bearer, report
from tests.drills.stores import Log, memory_path, read_memory, user_items
from tests.drills.turns import client_for, create_thread, stream_turn

FACTS = ("A is 1", "B is 2", "C is 3", "D is 4")
RECALL = "what did I ask you to remember?"
EXPECTED = "You asked me to remember: " + "; ".join(f"that {f}" for f in FACTS) + "."


async def remember(server: ServerProcess, thread: str, headers, facts) -> None:
    async with client_for(server.base_url) as http:
        for fact in facts:
            outcome = await stream_turn(http, thread, f"remember that {fact}", headers)
            assert outcome.ok, outcome.describe()


async def recall(server: ServerProcess, thread: str, headers) -> str | None:
    async with client_for(server.base_url) as http:
        return (await stream_turn(http, thread, RECALL, headers)).reply


def verify(server: ServerProcess) -> subprocess.CompletedProcess[str]:
    """`python -m app sessions verify` against the server's database and data directory."""
    return subprocess.run(
        [sys.executable, "-m", "app", "sessions", "verify"],
        cwd=REPO_ROOT,
        env=server.environment(),
        capture_output=True,
        text=True,
        timeout=120,
    )


def snapshot(path: Path, target: Path) -> None:
    """A consistent copy of a live WAL database (SQLite's backup API)."""
    source = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
    dest = sqlite3.connect(target)
    try:
        source.backup(dest)
    finally:
        source.close()
        dest.close()


class TestMemoryBehind:
    @pytest.mark.drill
    async def test_lost_wal_after_kill_is_found_by_verify_and_repaired(
        self, server_factory: ServerFactory, record_property
    ) -> None:
        server = server_factory()
        server.start()
        subject = f"wal-{uuid.uuid4().hex[:8]}"
        headers = bearer(subject)
        async with client_for(server.base_url) as http:
            thread = await create_thread(http, headers)
        await remember(server, thread, headers, FACTS[:2])
        server.stop()  # graceful: the WAL is checkpointed into the database file
        server.start()
        await remember(server, thread, headers, FACTS[2:])
        server.kill()
        path = memory_path(server.session_dir, Log(server.database_url).user_id(subject), thread)
        Path(f"{path}-wal").unlink()
        Path(f"{path}-shm").unlink(missing_ok=True)
        behind = user_items(read_memory(path))
        assert behind == [f"remember that {f}" for f in FACTS[:2]]

        checked = verify(server)
        assert checked.returncode == 1, checked.stdout + checked.stderr
        assert thread in checked.stdout
        server.start()
        reply = await recall(server, thread, headers)
        server.stop()
        assert reply == EXPECTED
        report(
            record_property,
            "lost_wal_figures",
            f"lost WAL: memory held {len(behind)} of 4 turns; verify exit "
            f"{checked.returncode} naming the thread; next turn recalled all 4",
        )

    @pytest.mark.drill
    async def test_older_copy_restored_under_a_running_server_is_rebuilt(
        self, server_factory: ServerFactory, tmp_path: Path, record_property
    ) -> None:
        server = server_factory()
        server.start()
        subject = f"restore-{uuid.uuid4().hex[:8]}"
        headers = bearer(subject)
        async with client_for(server.base_url) as http:
            thread = await create_thread(http, headers)
        await remember(server, thread, headers, FACTS[:2])
        path = memory_path(server.session_dir, Log(server.database_url).user_id(subject), thread)
        backup = tmp_path / "backup.db"
        snapshot(path, backup)
        await remember(server, thread, headers, FACTS[2:])

        restored = path.with_name(path.name + ".restoring")
        backup.rename(restored)
        os.replace(restored, path)
        for suffix in ("-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        assert user_items(read_memory(path)) == [f"remember that {f}" for f in FACTS[:2]]

        checked = verify(server)
        reply = await recall(server, thread, headers)
        server.stop()
        assert checked.returncode == 1, checked.stdout + checked.stderr
        assert thread in checked.stdout
        assert reply == EXPECTED
        report(
            record_property,
            "restored_copy_figures",
            "older copy restored under a running server: verify exit 1 naming the thread; "
            "next turn recalled all 4",
        )
