"""Drill 3: corrupted memory. Garbage bytes, a truncated file, a deleted file, a non-JSON row.

The next turn in each thread succeeds and the agent still recalls what it was told before
(memory rebuilt from the PostgreSQL log); every unusable file was moved, intact, to
`<AGENT_SESSION_DIR>/_quarantine/` (never deleted). An untouched control thread is left alone.
"""

from __future__ import annotations

import asyncio
import random
import sqlite3
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.drills.conftest import ServerFactory
from tests.drills.harness import bearer, report
from tests.drills.stores import Log, ThreadRef, memory_path, read_memory, user_items
from tests.drills.turns import TurnOutcome, client_for, create_thread, stream_turn

SIDECARS = ("-wal", "-shm", "-journal")
QUARANTINE = "_quarantine"


def fact(label: str) -> str:
    return f"the code of {label} is {sum(map(ord, label)) * 7919 % 100_000}"


def overwrite_with_garbage(path: Path, thread_id: str) -> bytes:
    del thread_id
    garbage = random.Random(path.name).randbytes(path.stat().st_size)
    path.write_bytes(garbage)
    return garbage


def truncate_to_half(path: Path, thread_id: str) -> bytes:
    del thread_id
    data = path.read_bytes()[: path.stat().st_size // 2]
    path.write_bytes(data)
    return data


def delete_file(path: Path, thread_id: str) -> bytes:
    del thread_id
    for suffix in ("", *SIDECARS):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    return b""


def insert_non_json_row(path: Path, thread_id: str) -> bytes:
    conn = sqlite3.connect(path)
    try:
        with conn:
            conn.execute(
                "INSERT INTO agent_messages(session_id, message_data) VALUES (?, 'not json')",
                (thread_id,),
            )
    finally:
        conn.close()
    return b""


Corruption = Callable[[Path, str], bytes]
CASES: dict[str, tuple[Corruption, bool]] = {  # label -> (corruption, must be quarantined)
    "garbage": (overwrite_with_garbage, True),
    "truncated": (truncate_to_half, True),
    "deleted": (delete_file, False),
    "non-json-row": (insert_non_json_row, True),
    "control": (lambda path, thread_id: b"", False),
}


def quarantined(session_dir: Path, thread_id: str) -> list[Path]:
    root = session_dir / QUARANTINE
    if not root.exists():
        return []
    return [
        p for p in root.rglob(f"*{thread_id}*") if p.is_file() and not p.name.endswith(SIDECARS)
    ]


def quarantine_problems(label: str, moved: list[Path], left: bytes, must: bool) -> list[str]:
    if not must:
        return [f"{label}: quarantined although usable: {moved}"] if moved else []
    if len(moved) != 1:
        return [f"{label}: expected the file in {QUARANTINE}/, found {moved}"]
    if label == "non-json-row":
        return [] if "not json" in read_memory(moved[0]) else [f"{label}: {moved[0]} lacks the row"]
    if moved[0].read_bytes() != left:
        return [f"{label}: {moved[0]} is not the file as it was left"]
    return []


class TestCorruption:
    @pytest.mark.drill
    async def test_unusable_memory_is_quarantined_and_rebuilt_from_the_log(
        self, server_factory: ServerFactory, drill_database: str, record_property
    ) -> None:
        server = server_factory(workers=1)
        server.start()
        subject = f"corrupt-{uuid.uuid4().hex[:8]}"
        headers = bearer(subject)
        log = Log(drill_database)

        async with client_for(server.base_url) as http:
            refs: dict[str, ThreadRef] = {}
            for label in CASES:
                thread_id = await create_thread(http, headers, label)
                refs[label] = ThreadRef(thread_id, subject, headers)
                for text in (f"remember that {fact(label)}", f"add task {label} chores"):
                    outcome = await stream_turn(http, thread_id, text, headers)
                    assert outcome.ok, outcome.describe()

            # Files are damaged at rest, as a disk fault or a stray process would: the server
            # stops first, which closes its pooled connections and folds each WAL in.
            server.stop()
            user_id = log.user_id(subject)
            left: dict[str, bytes] = {}
            sizes: dict[str, int] = {}
            for label, (corrupt, _) in CASES.items():
                path = memory_path(server.session_dir, user_id, refs[label].thread_id)
                assert path.exists(), f"{label}: no memory file before the drill"
                assert log.thread(refs[label].thread_id)["memory_state"] == "active"
                wal = Path(f"{path}-wal")
                # The stopped server closed the file, so the WAL was folded in: the drill
                # corrupts the whole memory, not a copy that a WAL would mask.
                assert not wal.exists() or wal.stat().st_size == 0, f"{label}: live WAL"
                sizes[label] = path.stat().st_size
                left[label] = corrupt(path, refs[label].thread_id)
            server.start()

            recalls: list[TurnOutcome] = await asyncio.gather(
                *(
                    stream_turn(http, ref.thread_id, "what did I ask you to remember?", headers)
                    for ref in refs.values()
                )
            )
            firsts: list[TurnOutcome] = [
                await stream_turn(http, ref.thread_id, "what did I say first?", headers)
                for ref in refs.values()
            ]
        server.stop()

        problems: list[str] = []
        figures = []
        for (label, (_, must)), recall, first in zip(CASES.items(), recalls, firsts, strict=True):
            ref = refs[label]
            expected = f"You asked me to remember: that {fact(label)}."
            if not recall.ok or recall.reply != expected:
                problems.append(f"{label}: recall {recall.describe()} reply={recall.reply!r}")
            if not first.ok or first.reply != f'You first said: "remember that {fact(label)}"':
                problems.append(f"{label}: second turn {first.describe()} reply={first.reply!r}")
            moved = quarantined(server.session_dir, ref.thread_id)
            problems += quarantine_problems(label, moved, left[label], must)
            path = memory_path(server.session_dir, user_id, ref.thread_id)
            items = read_memory(path) if path.exists() else []
            if user_items(items) != log.user_texts(ref.thread_id) or not all(
                isinstance(i, dict) for i in items
            ):
                problems.append(f"{label}: memory after recovery {items} vs the log")
            if log.thread(ref.thread_id)["memory_item_count"] != len(items):
                problems.append(f"{label}: bookkeeping does not match {len(items)} items")
            figures.append(
                f"{label} ({sizes[label]} B): recall {recall.status}/"
                f"{'ok' if recall.ok else 'failed'} in "
                f"{recall.seconds:.2f} s, quarantined {len(moved)}"
            )
        summary = "corruption drill: " + "; ".join(figures)
        report(record_property, "corruption_figures", summary)
        assert not problems, "\n".join(problems) + f"\n{server.log_tail()}"
