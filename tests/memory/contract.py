"""The memory contract every backend keeps: the SDK's Session behaviour plus ours (marks and
stamps, cut-back, turn-aligned pruning, the summary at the head, stats, checks, deletion,
erasure, and the stock SDK class reading what we stored).

`MemoryContract` is run by `test_contract.py` once per backend, through a `Backend` that
knows how to build the store, read it with the SDK's stock class and damage a row.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
from agents.memory import Session

from app.memory import (
    SUMMARY_PREFIX,
    MemoryCorruptError,
    MemoryInUseError,
    MemoryStore,
    StoredSummary,
)
from app.memory.summary import is_summary_item

Item = dict[str, Any]
MADE_AT = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


@dataclass
class Backend:
    """One backend under test, with a user and threads of that user that exist in PostgreSQL."""

    name: str
    store: MemoryStore
    user_id: uuid.UUID
    new_thread: Callable[[uuid.UUID], Awaitable[uuid.UUID]]  # a new thread of a user
    new_user: Callable[[], Awaitable[uuid.UUID]]
    stock: Callable[[uuid.UUID, uuid.UUID], Awaitable[Session]]  # the SDK's own class on it
    damage: Callable[[uuid.UUID, uuid.UUID], Awaitable[None]]  # store a row that is not JSON
    # Items as the backend returns them, in the form they were given (a provider adds ids).
    plain: Callable[[Item], Item] = lambda item: item
    # What it keeps of the contract beyond the SDK protocol (see FEATURES); a backend
    # without one documents the feature as not applying, and its own tests say what it does.
    features: frozenset[str] = field(default_factory=lambda: FEATURES)


# prune: turn-aligned pruning; summary: a summary at the head; damage: rows can be damaged
# (and quarantined); stock_reads_prunes: the stock class reads pruned, summarized memory;
# erase_unbinds: after erase_user the thread has no memory even while its row exists.
FEATURES = frozenset({"prune", "summary", "damage", "stock_reads_prunes", "erase_unbinds"})


def requires(backend: Backend, feature: str) -> None:
    if feature not in backend.features:
        pytest.skip(f"{feature} does not apply to the {backend.name} backend (see its tests)")


def user(text: str) -> Item:
    return {"role": "user", "content": text}


def reply(text: str) -> Item:
    return {
        "type": "message",
        "role": "assistant",
        "status": "completed",
        "content": [{"type": "output_text", "text": text, "annotations": []}],
    }


def tool_turn(n: int, *, calls: int = 1) -> list[Item]:
    """A turn: the user's message, `calls` tool calls with their outputs, and a reply."""
    items = [user(f"turn {n}")]
    for c in range(calls):
        call_id = f"call_{n}_{c}"
        items.append(
            {
                "type": "function_call",
                "name": "add_task",
                "arguments": f'{{"title": "t{n}"}}',
                "call_id": call_id,
            }
        )
        items.append({"type": "function_call_output", "call_id": call_id, "output": "ok"})
    items.append(reply(f"done {n}"))
    return items


def summary(text: str, covers: int) -> StoredSummary:
    return StoredSummary(text=f"{SUMMARY_PREFIX}\n- {text}", covers=covers, made_at=MADE_AT)


def texts(items: list[Item]) -> list[str]:
    """A readable digest of items: content for messages, the type otherwise."""
    out = []
    for item in items:
        content = item.get("content")
        if isinstance(content, list):
            content = content[0]["text"]
        out.append(content if isinstance(content, str) else item["type"])
    return out


class MemoryContract:
    """Behaviour of every memory backend (see the module docstring)."""

    @pytest.fixture
    async def thread(self, backend: Backend) -> uuid.UUID:
        return await backend.new_thread(backend.user_id)

    # --- the SDK's Session protocol -------------------------------------------------

    async def test_items_come_back_in_insertion_order(self, backend, thread) -> None:
        async with backend.store.open(backend.user_id, thread) as memory:
            await memory.add_items([user("one"), user("two")])
            await memory.add_items(tool_turn(3))
            items = await memory.get_items()
        assert texts(items) == [
            "one",
            "two",
            "turn 3",
            "function_call",
            "function_call_output",
            "done 3",
        ]

    async def test_limit_returns_the_latest_in_order(self, backend, thread) -> None:
        async with backend.store.open(backend.user_id, thread) as memory:
            await memory.add_items([user(str(n)) for n in range(10)])
            assert texts(await memory.get_items(limit=3)) == ["7", "8", "9"]
            assert len(await memory.get_items(limit=50)) == 10

    async def test_pop_item_removes_and_returns_the_newest(self, backend, thread) -> None:
        async with backend.store.open(backend.user_id, thread) as memory:
            await memory.add_items([user("a"), user("b")])
            assert backend.plain(await memory.pop_item()) == user("b")
            assert [backend.plain(i) for i in await memory.get_items()] == [user("a")]
            assert backend.plain(await memory.pop_item()) == user("a")
            assert await memory.pop_item() is None

    async def test_clear_session_empties_history(self, backend, thread) -> None:
        async with backend.store.open(backend.user_id, thread) as memory:
            await memory.add_items(tool_turn(1))
            await memory.clear_session()
            assert await memory.get_items() == []
            await memory.add_items([user("again")])
            assert [backend.plain(i) for i in await memory.get_items()] == [user("again")]

    async def test_unicode_and_big_integers_round_trip_exactly(self, backend, thread) -> None:
        item = {**user('Grüße, 你好, 🚀 \u202e "quoted" \\ back'), "n": 2**70, "f": 0.1}
        async with backend.store.open(backend.user_id, thread) as memory:
            await memory.add_items([item])
        async with backend.store.open(backend.user_id, thread) as memory:
            assert [backend.plain(i) for i in await memory.get_items()] == [item]

    # --- marks, stamps, cut-back ----------------------------------------------------

    async def test_a_new_memory_has_no_stamp_and_no_items(self, backend, thread) -> None:
        assert not await backend.store.exists(backend.user_id, thread)
        async with backend.store.open(backend.user_id, thread) as memory:
            mark = await memory.read_mark()
            assert (mark.generation, mark.stamped_last_id, mark.last_id) == (None, 0, 0)
            assert (await memory.stats()).items == 0

    async def test_a_stamp_marks_what_memory_held(self, backend, thread) -> None:
        async with backend.store.open(backend.user_id, thread) as memory:
            await memory.add_items(tool_turn(1))
            await memory.stamp(41)
            mark = await memory.read_mark()
            assert mark.generation == 41
            assert mark.stamped_last_id == mark.last_id > 0
            await memory.add_items([user("later")])
            assert await memory.items_after(mark.stamped_last_id) == [user("later")]
            assert (await memory.read_mark()).stamped_last_id == mark.stamped_last_id
        assert await backend.store.exists(backend.user_id, thread)

    async def test_replace_after_cuts_back_to_the_mark(self, backend, thread) -> None:
        async with backend.store.open(backend.user_id, thread) as memory:
            await memory.add_items(tool_turn(1))
            mark = (await memory.read_mark()).last_id
            await memory.add_items(tool_turn(2))
            await memory.replace_after(mark, [user("turn 2")])
            assert texts(await memory.get_items())[-2:] == ["done 1", "turn 2"]
            assert (await memory.stats()).items == 5

    async def test_drop_turns_forgets_the_newest_turns(self, backend, thread) -> None:
        async with backend.store.open(backend.user_id, thread) as memory:
            for n in range(3):
                await memory.add_items(tool_turn(n))
            assert await memory.drop_turns(2)
            assert texts(await memory.get_items()) == texts(tool_turn(0))
            assert not await memory.drop_turns(2)  # only one turn left: nothing changes
            assert len(await memory.get_items()) == 4

    # --- pruning --------------------------------------------------------------------

    async def test_prune_cuts_only_where_a_turn_starts(self, backend, thread) -> None:
        requires(backend, "prune")
        async with backend.store.open(backend.user_id, thread) as memory:
            for n in range(5):
                await memory.add_items(tool_turn(n))  # 4 items each: 20
            result = await memory.prune(10)
            items = await memory.get_items()
        assert (result.removed, result.kept, result.oversized_turn) == (12, 8, False)
        assert texts(items) == texts(tool_turn(3)) + texts(tool_turn(4))

    async def test_prune_down_to_cuts_deeper_and_under_the_cap_does_nothing(
        self, backend, thread
    ) -> None:
        requires(backend, "prune")
        async with backend.store.open(backend.user_id, thread) as memory:
            for n in range(5):
                await memory.add_items(tool_turn(n))
            untouched = await memory.prune(20)
            result = await memory.prune(12, down_to=5)
            assert (untouched.removed, untouched.kept) == (0, 20)
            assert (result.removed, result.kept) == (16, 4)
            assert texts(await memory.get_items()) == texts(tool_turn(4))

    async def test_an_oversized_newest_turn_is_kept_whole(self, backend, thread) -> None:
        requires(backend, "prune")
        async with backend.store.open(backend.user_id, thread) as memory:
            await memory.add_items(tool_turn(0))
            await memory.add_items(tool_turn(1, calls=5))  # 12 items
            result = await memory.prune(6)
            assert (result.removed, result.kept, result.oversized_turn) == (4, 12, True)
            assert texts(await memory.get_items()) == texts(tool_turn(1, calls=5))

    # --- the summary at the head (compaction) ---------------------------------------

    async def test_a_summary_heads_memory_and_survives_prunes(self, backend, thread) -> None:
        requires(backend, "summary")
        async with backend.store.open(backend.user_id, thread) as memory:
            for n in range(4):
                await memory.add_items(tool_turn(n))
            await memory.prune(8)
            await memory.put_summary(summary("first", 8), generation=7)
            head = await memory.head()
            assert head.summary == summary("first", 8)
            assert (head.turn_starts, head.first_turn_text) == (2, "turn 2")
            await memory.add_items(tool_turn(4))
            result = await memory.prune(8)  # the summary is kept and not counted
            await memory.put_summary(summary("second", 12), generation=8)
            items = await memory.get_items()
            assert (result.removed, result.kept) == (4, 9)
            assert texts(items)[0] == summary("second", 12).text
            assert [is_summary_item(i) for i in items].count(True) == 1
            assert texts(items)[1:] == texts(tool_turn(3)) + texts(tool_turn(4))
            assert (await memory.read_mark()).generation == 8

    async def test_rebuild_replaces_everything_with_summary_and_items(
        self, backend, thread
    ) -> None:
        async with backend.store.open(backend.user_id, thread) as memory:
            await memory.add_items(tool_turn(0) + tool_turn(1))
            await memory.rebuild(tool_turn(5), summary=summary("s", 4), generation=99)
            items = await memory.get_items()
            mark = await memory.read_mark()
            assert texts(items) == [summary("s", 4).text, *texts(tool_turn(5))]
            if "summary" in backend.features:
                assert (await memory.head()).summary == summary("s", 4)
            assert mark.generation == 99
            assert mark.stamped_last_id == mark.last_id
            assert (await memory.stats()).items == 5
            await memory.rebuild([user("only")], summary=None, generation=100)
            assert [backend.plain(i) for i in await memory.get_items()] == [user("only")]
            assert (await memory.head()).summary is None

    async def test_dropping_every_turn_forgets_nothing_of_the_summary(
        self, backend, thread
    ) -> None:
        requires(backend, "summary")
        async with backend.store.open(backend.user_id, thread) as memory:
            await memory.rebuild(tool_turn(1) + tool_turn(2), summary=summary("s", 2), generation=1)
            assert await memory.drop_turns(2)
            assert texts(await memory.get_items()) == [summary("s", 2).text]
            assert (await memory.head()).summary == summary("s", 2)

    # --- the stock SDK class reads what we store ------------------------------------

    async def test_the_sdks_stock_class_reads_our_memory(self, backend, thread) -> None:
        requires(backend, "stock_reads_prunes")
        async with backend.store.open(backend.user_id, thread) as memory:
            for n in range(3):
                await memory.add_items(tool_turn(n))
            await memory.prune(8)
            await memory.put_summary(summary("s", 4), generation=3)
            ours = await memory.get_items()
        stock = await backend.stock(backend.user_id, thread)
        assert await stock.get_items() == ours
        assert texts(ours)[0] == summary("s", 4).text

    # --- stats, checks, ownership -------------------------------------------------

    async def test_stats_count_items_and_bytes(self, backend, thread) -> None:
        async with backend.store.open(backend.user_id, thread) as memory:
            await memory.add_items(tool_turn(0) + tool_turn(1))
            stats = await memory.stats()
            assert stats.items == 8
            assert stats.bytes > 0
            assert stats.last_id == (await memory.read_mark()).last_id

    async def test_check_finds_a_row_that_is_not_json(self, backend, thread) -> None:
        requires(backend, "damage")
        async with backend.store.open(backend.user_id, thread) as memory:
            await memory.add_items(tool_turn(0))
            await memory.check()
        await backend.damage(backend.user_id, thread)
        async with backend.store.open(backend.user_id, thread) as memory:
            with pytest.raises(MemoryCorruptError):
                await memory.check()
            assert await backend.store.quarantine(memory) is not None
            await memory.check()  # the damaged memory moved aside: what is left is empty
            assert await memory.get_items() == []

    async def test_a_turn_holds_memory_against_another_turn(self, backend, thread) -> None:
        async with backend.store.open(backend.user_id, thread, for_turn=True):
            with pytest.raises(MemoryInUseError):
                async with backend.store.open(backend.user_id, thread, for_turn=True):
                    pass
            with pytest.raises(MemoryInUseError):
                await backend.store.delete(backend.user_id, thread, wait_s=0.05)

    async def test_delete_removes_memory(self, backend, thread) -> None:
        async with backend.store.open(backend.user_id, thread) as memory:
            await memory.add_items(tool_turn(0))
        listed = {t async for _, t in backend.store.iter_sessions()}
        assert thread in listed
        assert await backend.store.delete(backend.user_id, thread)
        assert not await backend.store.delete(backend.user_id, thread)
        assert not await backend.store.exists(backend.user_id, thread)
        assert thread not in {t async for _, t in backend.store.iter_sessions()}

    async def test_erasure_removes_only_that_users_memory(self, backend, thread) -> None:
        other_user = await backend.new_user()
        mine, theirs = (
            await backend.new_thread(backend.user_id),
            await backend.new_thread(other_user),
        )
        for owner, thread_id in ((backend.user_id, thread), (backend.user_id, mine)):
            async with backend.store.open(owner, thread_id) as memory:
                await memory.add_items(tool_turn(0))
        async with backend.store.open(other_user, theirs) as memory:
            await memory.add_items(tool_turn(1))
        erased = await backend.store.erase_user(backend.user_id)
        assert (erased.memory_files, erased.quarantined_files) == (2, 0)
        if "erase_unbinds" in backend.features:
            assert not await backend.store.exists(backend.user_id, thread)
        async with backend.store.open(other_user, theirs) as memory:
            assert texts(await memory.get_items()) == texts(tool_turn(1))
