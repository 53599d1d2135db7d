"""Finished turns kept for a while, so a client that lost its stream can resume it.

Bounded three ways: by count, by the bytes of their event logs, and by age. Running turns
are never dropped (their streams need them); a finished turn is dropped when it is too old
or when the cache is over either bound, oldest first. A resume after that finds the reply
in the thread's messages.
"""

from __future__ import annotations

import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass

from app.turns.log import TurnLog


@dataclass
class Replay:
    """What resuming a turn needs: whose thread it is, and its events."""

    thread_id: uuid.UUID
    log: TurnLog
    finished_at: float | None = None  # monotonic; None while the turn runs


class RecentTurns:
    def __init__(self, *, max_turns: int, max_bytes: int, max_age_s: float) -> None:
        self._turns: OrderedDict[uuid.UUID, Replay] = OrderedDict()
        self._max_turns = max_turns
        self._max_bytes = max_bytes
        self._max_age_s = max_age_s

    def add(self, turn_id: uuid.UUID, replay: Replay) -> None:
        self._turns[turn_id] = replay
        self.evict()

    def get(self, turn_id: uuid.UUID) -> Replay | None:
        self.evict()
        return self._turns.get(turn_id)

    def finish(self, turn_id: uuid.UUID) -> None:
        replay = self._turns.get(turn_id)
        if replay is not None:
            replay.finished_at = time.monotonic()
        self.evict()

    def evict(self) -> None:
        """Drop finished turns past their age, then the oldest until both bounds hold."""
        now = time.monotonic()
        finished = [(t, r) for t, r in self._turns.items() if r.finished_at is not None]
        total = sum(r.log.nbytes for r in self._turns.values())
        count = len(self._turns)
        for turn_id, replay in finished:
            assert replay.finished_at is not None
            too_old = now - replay.finished_at > self._max_age_s
            if not too_old and count <= self._max_turns and total <= self._max_bytes:
                continue
            del self._turns[turn_id]
            count -= 1
            total -= replay.log.nbytes

    @property
    def nbytes(self) -> int:
        return sum(r.log.nbytes for r in self._turns.values())

    def __len__(self) -> int:
        return len(self._turns)
