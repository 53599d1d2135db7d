"""Turn-aligned pruning of agent memory: the one rule, in Python and in SQL side by side.

A cut is only ever made where a user message starts a turn. Everything a turn holds — tool
calls and their outputs, reasoning items, approvals — comes after its user message, so a
history that starts at a turn boundary can never hold a `function_call_output` whose
`function_call` was removed (OpenAI rejects that input with "No tool call found for function
call output").

`plan_cut` decides on decoded items (rebuilding memory from the log); `prune_rows` applies
the same rule to a memory file's rows without decoding them in Python (after every turn).
The property tests in `tests/memory/test_pruning.py` prove the two agree.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


def is_turn_start(item: dict[str, Any]) -> bool:
    """A user message (easy or typed form) starts a turn."""
    return item.get("role") == "user" and item.get("type", "message") == "message"


# The same rule over a stored row's JSON text, for SQLite.
IS_TURN_START_SQL = (
    "(json_valid(message_data) AND json_extract(message_data, '$.role') = 'user' AND "
    "coalesce(json_extract(message_data, '$.type'), 'message') = 'message')"
)


@dataclass(frozen=True)
class Cut:
    """Where to cut a history: keep items from `keep_from` on."""

    keep_from: int
    oversized_turn: bool  # the newest turn alone exceeds the cap and is kept whole


def plan_cut(turn_starts: Sequence[bool], max_items: int, *, down_to: int | None = None) -> Cut:
    """Over `max_items` items, choose the oldest turn boundary that leaves at most `down_to`
    (default `max_items`): cutting a little deeper than the cap makes prunes rarer.

    Args:
        turn_starts: for each item in order, whether it starts a turn.
        max_items: the cap.
        down_to: what a prune cuts back to (at most the cap).

    Returns:
        The cut. With no boundary that fits, the newest turn is kept whole (and flagged);
        with no boundary at all nothing is removed, since no cut would be valid.
    """
    total = len(turn_starts)
    if total <= max_items:
        return Cut(keep_from=0, oversized_turn=False)
    keep = min(max_items, max_items if down_to is None else down_to)
    boundaries = [i for i, start in enumerate(turn_starts) if start]
    for index in boundaries:
        if total - index <= keep:
            return Cut(keep_from=index, oversized_turn=False)
    if not boundaries:
        return Cut(keep_from=0, oversized_turn=True)
    return Cut(keep_from=boundaries[-1], oversized_turn=True)


@dataclass(frozen=True)
class PruneResult:
    removed: int
    kept: int
    oversized_turn: bool  # one turn alone exceeds the cap; it was kept whole


def prune_rows(
    c: sqlite3.Connection,
    session_id: str,
    max_items: int,
    *,
    down_to: int | None = None,
    pinned: int | None = None,
) -> PruneResult:
    """`plan_cut`, applied to a memory file inside the caller's transaction.

    Only the newest `max_items` rows can hold the boundary to keep from, so only they are
    classified, by SQLite's JSON functions (no row is decoded in Python). The `pinned` row
    (the summary at the head of memory) is never removed, and is not counted: the caller's
    cap leaves room for it.
    """
    (total,) = c.execute(
        "SELECT count(*) FROM agent_messages WHERE session_id = ? AND id IS NOT ?",
        (session_id, pinned),
    ).fetchone()
    extra = 0 if pinned is None else 1
    if total <= max_items:
        return PruneResult(removed=0, kept=total + extra, oversized_turn=False)
    budget = min(max_items, max_items if down_to is None else down_to)
    window = c.execute(
        f"SELECT id, {IS_TURN_START_SQL} FROM agent_messages WHERE session_id = ? "
        "AND id IS NOT ? ORDER BY id DESC LIMIT ?",
        (session_id, pinned, budget),
    ).fetchall()[::-1]
    keep_from = next((row_id for row_id, start in window if start), None)
    oversized = keep_from is None
    if oversized:  # the newest turn alone is over the cap: keep it whole
        (keep_from,) = c.execute(
            f"SELECT max(id) FROM agent_messages WHERE session_id = ? AND id < ? "
            f"AND {IS_TURN_START_SQL}",
            (session_id, window[0][0]),
        ).fetchone()
    if keep_from is None:  # no turn boundary at all: no cut would be valid
        return PruneResult(removed=0, kept=total + extra, oversized_turn=True)
    removed = c.execute(
        "DELETE FROM agent_messages WHERE session_id = ? AND id < ? AND id IS NOT ?",
        (session_id, keep_from, pinned),
    ).rowcount
    return PruneResult(removed=removed, kept=total + extra - removed, oversized_turn=oversized)


def drop_turn_rows(c: sqlite3.Connection, session_id: str, count: int) -> bool:
    """Delete the newest `count` turns (from the `count`-th newest turn start on), inside
    the caller's transaction. False, deleting nothing, when fewer turns are stored."""
    starts = c.execute(
        f"SELECT id FROM agent_messages WHERE session_id = ? AND {IS_TURN_START_SQL} "
        "ORDER BY id DESC LIMIT ?",
        (session_id, count),
    ).fetchall()
    if len(starts) < count:
        return False
    c.execute(
        "DELETE FROM agent_messages WHERE session_id = ? AND id >= ?", (session_id, starts[-1][0])
    )
    return True
