"""The summary at the head of memory, on real files: property-based over generated histories.

Whatever the history, the cap and the order of prunes, summaries and rebuilds, the summary is
the first item, there is one, whole turns follow it, no tool call is ever separated from its
output, and memory holds at most the cap.
"""

from __future__ import annotations

import asyncio
import tempfile
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from agents import SQLiteSession
from hypothesis import given, settings as hypothesis_settings, strategies as st

from app.memory import SUMMARY_PREFIX, AgentMemoryStore, StoredSummary
from app.memory.log_items import newest_whole_turns
from app.memory.pruning import is_turn_start
from app.memory.summary import is_summary_item
from tests.memory.test_pruning import turns_strategy

Item = dict[str, Any]
MADE_AT = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def check_invariants(items: list[Item], *, cap: int, newest_turn: list[Item]) -> None:
    summaries = [i for i, item in enumerate(items) if is_summary_item(item)]
    assert summaries in ([], [0])
    rest = items[1:] if summaries else items
    if rest:
        assert is_turn_start(rest[0])
    seen_calls: set[str] = set()
    for item in items:
        if item.get("type") == "function_call":
            seen_calls.add(item["call_id"])
        if item.get("type") == "function_call_output":
            assert item["call_id"] in seen_calls  # its call came first, with no summary between
    assert len(items) <= cap or rest == newest_turn


async def _play(root: Path, turns: list[list[Item]], cap: int, actions: list[str]) -> None:
    store = AgentMemoryStore(root)
    user_id, thread_id = uuid.uuid4(), uuid.uuid4()
    budget = cap - 1  # one item of the cap is the summary's (Settings.memory_max_items)
    history: list[Item] = []
    summary: StoredSummary | None = None
    generation = 0
    async with store.open(user_id, thread_id) as memory:
        for turn, action in zip(turns, actions, strict=False):
            history.extend(turn)
            await memory.add_items(turn)
            pruned = await memory.prune(budget)
            if pruned.removed and action in ("summarize", "rebuild"):
                generation += 1
                summary = StoredSummary(f"{SUMMARY_PREFIX}\n- {generation}", generation, MADE_AT)
                await memory.put_summary(summary, generation=generation)
            if action == "rebuild":
                generation += 1
                kept = newest_whole_turns(history, budget)
                await memory.rebuild(kept, summary=summary, generation=generation)
            items = await memory.get_items(limit=10_000)
            check_invariants(items, cap=cap, newest_turn=turn)
            if summary is not None:
                assert items[0] == {"role": "system", "content": summary.text}
                assert (await memory.head()).summary == summary
                assert (await memory.read_mark()).generation == generation
    store.close()
    stock = SQLiteSession(str(thread_id), store.path_for(user_id, thread_id))
    try:  # the stock class reads the same history, summary first
        assert await stock.get_items() == items
    finally:
        stock.close()


class TestSummaryProperties:
    @hypothesis_settings(max_examples=60, deadline=None)
    @given(
        turns=turns_strategy,
        cap=st.integers(min_value=2, max_value=30),
        actions=st.lists(st.sampled_from(["prune", "summarize", "rebuild"]), max_size=40),
    )
    def test_the_summary_heads_memory_and_never_splits_a_tool_pair(
        self, turns, cap, actions
    ) -> None:
        actions = actions + ["summarize"] * (len(turns) - len(actions))
        with tempfile.TemporaryDirectory() as root:
            asyncio.run(_play(Path(root), turns, cap, actions))


class TestSummaryOnFile:
    async def test_later_summaries_update_the_first_in_place(self, tmp_path) -> None:
        store = AgentMemoryStore(tmp_path)
        turn = [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}]
        async with store.open(uuid.uuid4(), uuid.uuid4()) as memory:
            for n in range(1, 6):
                await memory.add_items(turn)
                if (await memory.prune(3)).removed:
                    await memory.put_summary(
                        StoredSummary(f"{SUMMARY_PREFIX} {n}", n, MADE_AT), generation=n
                    )
            items = await memory.get_items()
        assert [is_summary_item(i) for i in items] == [True, False, False]
        assert items[0]["content"] == f"{SUMMARY_PREFIX} 5"

    async def test_a_summary_needs_something_pruned_before_it(self, tmp_path) -> None:
        store = AgentMemoryStore(tmp_path)
        async with store.open(uuid.uuid4(), uuid.uuid4()) as memory:
            await memory.add_items([{"role": "user", "content": "only"}])
            with pytest.raises(ValueError, match="no room"):
                await memory.put_summary(StoredSummary(SUMMARY_PREFIX, 1, MADE_AT), generation=1)
            assert await memory.get_items() == [{"role": "user", "content": "only"}]
            assert (await memory.read_mark()).generation is None
