"""Workload 14: what the fair-use check adds to a turn's PostgreSQL work.

A turn's PostgreSQL work, through the real services on the real database, without the model
and without memory: the lease claim (its own transaction), the user message and turn row
(the request's transaction), then the reply's bookkeeping and the lease's release (the save
transaction). It runs with the limits off (the claim is `leases.claim`) and on (the claim is
`TurnLimiter.claim_turn`: the locked upsert of the user's window, then the claim with its
running-turns condition), interleaved and rotated, on one user with a day's worth of turns
already recorded (the token sum reads them). Limits are set high enough never to refuse.
A third variant adds one empty statement (`SELECT 1`) to the off claim's transaction: what
one round trip costs on this machine, so the check's own work shows beside it. Figures: the
claim transaction alone and the whole sequence, median and p95, each variant's ratio to off,
and the absolute added milliseconds.
"""

from __future__ import annotations

import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from app.config import load_settings
from app.db import SessionMaker, create_engine, create_sessionmaker, session_scope
from app.models import MessageRole, Turn, TurnStatus
from app.services import leases, messages, threads, turn_records, users
from app.services.limits import TurnLimiter
from app.services.turn_records import TurnUsage
from bench.env import Database
from bench.report import Row
from bench.stats import raw_ms, rotated, summarize

PRIOR_TURNS = 500  # a heavy user's day: the daily token sum reads these rows
LEASE = timedelta(seconds=30)
# off: `leases.claim`; empty: the same with a `SELECT 1` first in its transaction (what one
# more round trip costs here); on: `TurnLimiter.claim_turn`.
MODES = ("off", "empty", "on")


async def w14(root: Path, db: Database, reps: int) -> tuple[list[Row], dict[str, Any]]:
    del root
    settings = load_settings(
        DATABASE_URL=db.url,
        LIMIT_TURNS_PER_MINUTE=100_000,
        LIMIT_RUNNING_TURNS=10_000,
        LIMIT_DAILY_TOKENS=10**15,
    )
    assert settings.DATABASE_URL is not None
    engine = create_engine(settings.DATABASE_URL)
    sessionmaker = create_sessionmaker(engine)
    limiter = TurnLimiter(settings)
    claims: dict[str, list[float]] = {mode: [] for mode in MODES}
    turns: dict[str, list[float]] = {mode: [] for mode in MODES}
    try:
        user_id, thread_id = await _seed(sessionmaker)
        for warm in range(12):  # connections and plans, not measured
            await _turn(sessionmaker, MODES[warm % 3], limiter, user_id, thread_id)
        for rep in range(reps):
            for mode in rotated(MODES, rep):
                began = time.perf_counter()
                claimed = await _turn(sessionmaker, mode, limiter, user_id, thread_id)
                turns[mode].append(time.perf_counter() - began)
                claims[mode].append(claimed)
    finally:
        await engine.dispose()
    return _report(claims, turns)


async def _seed(sessionmaker: SessionMaker) -> tuple[uuid.UUID, uuid.UUID]:
    async with session_scope(sessionmaker) as db:
        user_id = await users.get_or_create_user(db, f"bench-limits-{uuid.uuid4()}")
        thread = await threads.create_thread(db, user_id=user_id, title="w14", agent="todo")
        for _ in range(PRIOR_TURNS):
            db.add(
                Turn(
                    thread_id=thread.id,
                    user_id=user_id,
                    status=TurnStatus.COMPLETED,
                    input_tokens=900,
                    output_tokens=100,
                )
            )
        return user_id, thread.id


async def _turn(
    sessionmaker: SessionMaker,
    mode: str,
    limiter: TurnLimiter,
    user_id: uuid.UUID,
    thread_id: uuid.UUID,
) -> float:
    """One turn's PostgreSQL work; returns the seconds its claim took."""
    holder = uuid.uuid4()
    claim = leases.Claim(user_id=user_id, thread_id=thread_id, holder=holder, lease=LEASE)
    began = time.perf_counter()
    if mode == "on":
        thread = await limiter.claim_turn(
            sessionmaker, user_id=user_id, thread_id=thread_id, holder=holder, lease=LEASE
        )
    elif mode == "empty":
        async with session_scope(sessionmaker) as db:
            await db.exec(sa.text("SELECT 1"))  # a round trip that does nothing
            thread = await leases.claim_in(db, claim)
    else:
        async with session_scope(sessionmaker) as db:
            thread = await leases.claim_in(db, claim)
    claimed = time.perf_counter() - began
    async with session_scope(sessionmaker) as db:
        await turn_records.start_turn(db, thread, holder)
        await messages.append_message(
            db,
            thread_id=thread_id,
            holder=holder,
            role=MessageRole.USER,
            content="add task water the plants",
            turn_id=holder,
            turn_status=TurnStatus.RUNNING,
        )
    async with session_scope(sessionmaker) as db:
        await messages.append_message(
            db,
            thread_id=thread_id,
            holder=holder,
            role=MessageRole.ASSISTANT,
            content='Added "water the plants" to your tasks.',
            turn_id=holder,
            turn_status=TurnStatus.COMPLETED,
        )
        await turn_records.finish_turn(
            db,
            thread_id=thread_id,
            turn_id=holder,
            status=TurnStatus.COMPLETED,
            usage=TurnUsage(requests=1, input_tokens=900, output_tokens=100),
        )
        await leases.release(db, [thread_id], holder)
    return claimed


def _report(
    claims: dict[str, list[float]], turns: dict[str, list[float]]
) -> tuple[list[Row], dict[str, Any]]:
    rows = []
    figures: dict[str, Any] = {}
    for label, samples in (("claim transaction", claims), ("turn's PostgreSQL work", turns)):
        off = summarize(samples["off"])
        rows.append(Row("14", f"{label}, limits off", "T", off["median_ms"], off["p95_ms"]))
        key = "claim" if label.startswith("claim") else "turn"
        for mode, what in (("empty", "off + an empty round trip"), ("on", "limits on")):
            s = summarize(samples[mode])
            added = s["median_ms"] - off["median_ms"]
            rows.append(
                Row(
                    "14",
                    f"{label}, {what}",
                    "T",
                    s["median_ms"],
                    s["p95_ms"],
                    value=f"+{added:.2f} ms median",
                    ratio=s["median_ms"] / off["median_ms"],
                    ratio_of="median/off",
                )
            )
            figures[f"{key}_{mode}_added_median_ms"] = round(added, 3)
        figures[f"{key}_ms"] = {mode: raw_ms(v) for mode, v in samples.items()}
    rows[-1].note = (
        f"one user with {PRIOR_TURNS} turns today; the check is one statement in the claim's "
        "transaction (one round trip)"
    )
    return rows, figures
