"""Drill (F2): what a worker keeps per turn is bounded; its memory levels off.

1. One user with 48 facts of 32 KB asks six times for them back (a 1.5 MB reply streamed as
   ~175,000 text deltas each). Before the fix every cached turn kept each delta as a pydantic
   object: RSS went from 375 MB to 1,069 MB and never came down. Now the six replies may cost
   at most `LARGE_REPLIES_BOUND_MB` of RSS.
2. 6,000 ordinary turns (many users and threads): RSS must level off, not grow with every
   turn: the growth over the last third is at most `PLATEAU_BOUND_MB`.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest

from tests.drills.conftest import ServerFactory
from tests.drills.harness import bearer, report
from tests.drills.turns import client_for, create_thread, stream_turn

FACT_CHARS = 31_900  # under MAX_MESSAGE_CHARS (32,000)
FACTS = 48
LARGE_REPLIES = 6
LARGE_REPLIES_BOUND_MB = 150.0
ORDINARY_TURNS = 6_000
CLIENTS = 24
PLATEAU_BOUND_MB = 12.0


def rss_mb(pid: int) -> float:
    """Resident set size of a process (the single-worker server) in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


class TestMemoryGrowth:
    @pytest.mark.drill
    async def test_six_huge_replies_cost_a_bounded_amount(
        self, server_factory: ServerFactory, record_property
    ) -> None:
        server = server_factory()
        server.start()
        assert server.proc is not None
        headers = bearer(f"hoarder-{uuid.uuid4().hex[:8]}")
        async with client_for(server.base_url, timeout=300) as http:
            thread = await create_thread(http, headers)
            for n in range(FACTS):
                fact = f"fact {n:02d} is " + chr(ord("a") + n % 26) * (FACT_CHARS - 20)
                outcome = await stream_turn(http, thread, f"remember that {fact}", headers)
                assert outcome.ok, outcome.describe()
            before = rss_mb(server.proc.pid)
            sizes, first_reply = [], ""
            for _ in range(LARGE_REPLIES):
                outcome = await stream_turn(
                    http, thread, "what did I ask you to remember?", headers, limit_seconds=300
                )
                assert outcome.ok, outcome.describe()[:500]
                first_reply = first_reply or outcome.reply or ""
                sizes.append(len(outcome.reply or ""))
            after = rss_mb(server.proc.pid)
        server.stop()
        grew = after - before
        report(
            record_property,
            "large_reply_figures",
            f"six replies of {min(sizes) / 1e6:.2f} MB: RSS {before:.0f} MB -> {after:.0f} MB "
            f"(+{grew:.0f} MB, bound {LARGE_REPLIES_BOUND_MB:.0f} MB)",
        )
        # The first reply holds every fact; later ones fewer, as the read window slides.
        assert [f"that fact {n:02d} is " in first_reply for n in range(FACTS)] == [True] * FACTS
        assert grew <= LARGE_REPLIES_BOUND_MB

    @pytest.mark.drill
    async def test_rss_levels_off_over_thousands_of_turns(
        self, server_factory: ServerFactory, record_property
    ) -> None:
        server = server_factory()
        server.start()
        assert server.proc is not None
        run = uuid.uuid4().hex[:8]
        samples: list[tuple[int, float]] = []
        done = 0
        async with client_for(server.base_url, timeout=120) as http:
            refs = []
            for n in range(CLIENTS):
                headers = bearer(f"steady-{run}-{n}")
                refs.append((await create_thread(http, headers), headers))

            async def client(thread: str, headers: dict[str, str], turns: int) -> None:
                nonlocal done
                for k in range(turns):
                    text = f"add task t{k}" if k % 3 == 0 else f"remember that k is {k}"
                    outcome = await stream_turn(http, thread, text, headers)
                    assert outcome.ok, outcome.describe()
                    done += 1
                    if done % (ORDINARY_TURNS // 6) == 0:
                        samples.append((done, rss_mb(server.proc.pid)))

            per_client = ORDINARY_TURNS // CLIENTS
            await asyncio.gather(*(client(t, h, per_client) for t, h in refs))
        server.stop()
        by_turn = dict(samples)
        third = ORDINARY_TURNS // 3
        late_growth = by_turn[ORDINARY_TURNS] - by_turn[2 * third]
        report(
            record_property,
            "plateau_figures",
            f"{done} turns: RSS by turns {[(n, round(mb)) for n, mb in samples]} MB; "
            f"last third +{late_growth:.1f} MB (bound {PLATEAU_BOUND_MB} MB)",
        )
        assert late_growth <= PLATEAU_BOUND_MB
