"""Turn-aligned pruning: property-based over generated histories, and on real files."""

from __future__ import annotations

import json
import sqlite3
import uuid
from typing import Any

from hypothesis import given, settings as hypothesis_settings, strategies as st

from app.memory import AgentMemoryStore
from app.memory.log_items import items_from_log
from app.memory.pruning import is_turn_start, plan_cut, prune_rows
from app.memory.versions import upgrade

Item = dict[str, Any]


def _turn(draw_kind: str, n: int, calls: int) -> list[Item]:
    """One turn: a user message, then (for tool turns) reasoning, calls and outputs, then a reply."""
    turn: list[Item] = [{"role": "user", "content": f"message {n}"}]
    if draw_kind != "text":
        turn.append({"type": "reasoning", "id": f"rs_{n}", "summary": []})
        for k in range(calls):
            call_id = f"call_{n}_{k}"
            turn.append(
                {"type": "function_call", "call_id": call_id, "name": "add_task", "arguments": "{}"}
            )
            turn.append({"type": "function_call_output", "call_id": call_id, "output": "{}"})
    turn.append(
        {
            "type": "message",
            "role": "assistant",
            "content": [{"type": "output_text", "text": f"reply {n}"}],
        }
    )
    return turn


turns_strategy = st.lists(
    st.tuples(st.sampled_from(["text", "tool", "multi"]), st.integers(min_value=1, max_value=6)),
    min_size=1,
    max_size=40,
).map(
    lambda specs: [
        _turn(kind, n, 1 if kind == "tool" else calls) for n, (kind, calls) in enumerate(specs)
    ]
)


def prune(history: list[Item], cap: int, down_to: int | None = None) -> tuple[list[Item], bool]:
    cut = plan_cut([is_turn_start(i) for i in history], cap, down_to=down_to)
    return history[cut.keep_from :], cut.oversized_turn


class TestPlanCutProperties:
    @hypothesis_settings(max_examples=300, deadline=None)
    @given(turns=turns_strategy, cap=st.integers(min_value=2, max_value=60))
    def test_cut_keeps_the_newest_whole_turns_within_the_cap(self, turns, cap) -> None:
        history = [item for turn in turns for item in turn]
        kept, oversized = prune(history, cap)
        # The count is within the cap, or the kept items are exactly one (the newest) turn.
        if oversized:
            assert kept == turns[-1]
            assert len(kept) > cap
        else:
            assert len(kept) <= cap
        # What remains starts with a user message.
        assert is_turn_start(kept[0])
        # Every output has its call; every reasoning item is followed by its turn's items.
        call_ids = {i["call_id"] for i in kept if i.get("type") == "function_call"}
        assert all(
            i["call_id"] in call_ids for i in kept if i.get("type") == "function_call_output"
        )
        # Exactly the newest whole turns, in order, as many as fit.
        k = next(k for k in range(1, len(turns) + 1) if [i for t in turns[-k:] for i in t] == kept)
        if not oversized and k < len(turns):
            assert len(kept) + len(turns[-k - 1]) > cap

    @hypothesis_settings(max_examples=200, deadline=None)
    @given(
        turns=turns_strategy,
        cap=st.integers(min_value=2, max_value=60),
        slack=st.integers(min_value=0, max_value=20),
    )
    def test_over_the_cap_a_prune_cuts_down_to_the_lower_mark(self, turns, cap, slack) -> None:
        history = [item for turn in turns for item in turn]
        down_to = max(1, cap - slack)
        kept, oversized = prune(history, cap, down_to)
        if len(history) <= cap:
            assert kept == history  # under the cap nothing is cut, however low the mark
        elif not oversized:
            assert len(kept) <= down_to
            assert is_turn_start(kept[0])
        else:
            assert kept == turns[-1]
            assert len(kept) > down_to

    def test_short_history_is_untouched(self) -> None:
        assert plan_cut([True, False, True], 3).keep_from == 0

    def test_history_without_any_turn_start_is_never_cut(self) -> None:
        cut = plan_cut([False] * 10, 4)
        assert cut.keep_from == 0
        assert cut.oversized_turn is True


class TestSqlPruneAgreesWithThePlanner:
    """`prune_rows` (SQL, after every turn) and `plan_cut` (Python, for rebuilds) are one rule."""

    @hypothesis_settings(max_examples=200, deadline=None)
    @given(
        turns=turns_strategy,
        cap=st.integers(min_value=2, max_value=60),
        lead=st.lists(st.sampled_from(["orphan_output", "assistant"]), max_size=3),
        slack=st.integers(min_value=0, max_value=20),
    )
    def test_same_items_kept_and_same_oversized_flag(self, turns, cap, lead, slack) -> None:
        # Histories may also start mid-turn (what older prunes or imports can leave).
        leading = [
            {"type": "function_call_output", "call_id": "call_x", "output": "{}"}
            if kind == "orphan_output"
            else {"role": "assistant", "content": "earlier"}
            for kind in lead
        ]
        history = leading + [item for turn in turns for item in turn]
        down_to = max(1, cap - slack)
        expected, oversized = prune(history, cap, down_to)
        conn = sqlite3.connect(":memory:", isolation_level=None)
        try:
            upgrade(conn)
            conn.executemany(
                "INSERT INTO agent_messages (session_id, message_data) VALUES ('s', ?)",
                [(json.dumps(item),) for item in history],
            )
            result = prune_rows(conn, "s", cap, down_to=down_to)
            rows = conn.execute("SELECT message_data FROM agent_messages ORDER BY id").fetchall()
        finally:
            conn.close()
        assert [json.loads(data) for (data,) in rows] == expected
        assert result.oversized_turn == oversized
        assert (result.kept, result.removed) == (len(expected), len(history) - len(expected))


class TestPruneOnFile:
    async def test_prune_a_tool_heavy_session_at_a_turn_boundary(self, tmp_path) -> None:
        history = [item for n in range(50) for item in _turn("multi" if n % 2 else "text", n, 3)]
        store = AgentMemoryStore(tmp_path)
        user_id, conv_id = uuid.uuid4(), uuid.uuid4()
        async with store.open(user_id, conv_id) as memory:
            await memory.add_items(history)
            result = await memory.prune(100)
            kept = await memory.get_items(limit=10_000)
        expected, _ = prune(history, 100)
        assert kept == expected
        assert result.removed == len(history) - len(expected)
        assert result.kept == len(kept) <= 100
        assert kept[0]["role"] == "user"

    async def test_oversized_single_turn_is_kept_whole_and_reported(self, tmp_path) -> None:
        history = _turn("text", 0, 0) + _turn("multi", 1, 10)
        store = AgentMemoryStore(tmp_path)
        async with store.open(uuid.uuid4(), uuid.uuid4()) as memory:
            await memory.add_items(history)
            result = await memory.prune(5)
            assert await memory.get_items() == _turn("multi", 1, 10)
        assert result.oversized_turn is True

    async def test_prune_checkpoint_and_vacuum_shrink_the_files(self, tmp_path) -> None:
        store = AgentMemoryStore(tmp_path)
        user_id, conv_id = uuid.uuid4(), uuid.uuid4()
        big = [{"role": "user", "content": "x" * 2000}] * 400
        async with store.open(user_id, conv_id) as memory:
            await memory.add_items(big)
            await memory.checkpoint()
            before = store.path_for(user_id, conv_id).stat().st_size
            await memory.prune(10)
            await memory.checkpoint()
            assert await memory.free_page_ratio() > 0.5
            await memory.vacuum()
            assert await memory.free_page_ratio() == 0
            assert len(await memory.get_items()) == 10
        path = store.path_for(user_id, conv_id)
        assert path.stat().st_size < before / 10
        wal = path.with_name(path.name + "-wal")
        assert not wal.exists() or wal.stat().st_size == 0


class TestItemsFromLog:
    def test_tool_calls_are_restored_before_the_reply(self) -> None:
        log = [
            ("user", "add milk", {}),
            (
                "assistant",
                "Added.",
                {
                    "tool_calls": [
                        {
                            "call_id": "c1",
                            "name": "add_task",
                            "arguments": '{"title":"milk"}',
                            "output": '{"id":"1"}',
                        },
                    ]
                },
            ),
        ]
        assert items_from_log(log) == [
            {"role": "user", "content": "add milk"},
            {
                "type": "function_call",
                "call_id": "c1",
                "name": "add_task",
                "arguments": '{"title":"milk"}',
            },
            {"type": "function_call_output", "call_id": "c1", "output": '{"id":"1"}'},
            {"role": "assistant", "content": "Added."},
        ]
