"""The numbered event log of one turn: what a stream follows live and a client resumes.

Kept compact because a worker holds many: payloads are stored as JSON text, and a run of
text deltas is one UTF-8 buffer with the end offset of each delta, not one object per delta
(a 1.5 MB reply arrives as ~175,000 deltas; as pydantic objects they cost ~110 MB). Ids stay
exactly those the live stream sent: a client that resumes inside a run of deltas gets the
rest of the run as one delta event carrying the run's last id.

`encode_after` turns the events after an id into one text that `ingest` appends to another
log (on another node, from PostgreSQL): one line per event, `id<TAB>kind<TAB>data`, and for a
run of deltas `first id<TAB>text_delta*<TAB>[JSON array of the deltas]`. Payloads are copied
byte for byte, so a resumed stream carries exactly what the live one did.
"""

from __future__ import annotations

import asyncio
import bisect
from array import array
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Protocol

import orjson

from app.turns.events import TextDelta, TurnEvent

# Bytes an entry costs beyond its text (object, list slots): counted so the cache bound holds.
_ENTRY_OVERHEAD_BYTES = 120


@dataclass(slots=True)
class _Event:
    id: int
    kind: TurnEvent
    data: str  # the payload as JSON


class _DeltaRun:
    """Consecutive text deltas: one buffer, and where each delta ends in it."""

    __slots__ = ("ends", "first_id", "text")

    def __init__(self, first_id: int) -> None:
        self.first_id = first_id
        self.text = bytearray()
        self.ends = array("Q")

    @property
    def id(self) -> int:
        """The last id this run covers."""
        return self.first_id + len(self.ends) - 1

    def add(self, delta: str) -> None:
        self.text += delta.encode()
        self.ends.append(len(self.text))

    def since(self, after: int) -> str:
        """The deltas after id `after`, joined."""
        sent = after - self.first_id  # index of the last delta already sent (< 0: none)
        start = self.ends[sent] if sent >= 0 else 0
        return self.text[start:].decode()

    @property
    def nbytes(self) -> int:
        return len(self.text) + self.ends.itemsize * len(self.ends)

    def deltas_after(self, after: int) -> list[str]:
        """Each delta after id `after`, one by one (for encoding)."""
        first = max(after - self.first_id + 1, 0)
        out = []
        start = self.ends[first - 1] if first > 0 else 0
        for end in self.ends[first:]:
            out.append(self.text[start:end].decode())
            start = end
        return out


SentEvent = tuple[int, TurnEvent, str]  # (id, kind, JSON data)
_DELTA_RUN = "text_delta*"  # the kind of an encoded run of deltas


class FollowableLog(Protocol):
    """What a stream follows: a turn's events after an id, live until `done`."""

    def follow(
        self, after: int = 0, *, idle_timeout_s: float | None = None
    ) -> AsyncIterator[SentEvent | None]: ...


class TurnLog:
    """Events numbered from 1, appended by the turn and read by any number of followers."""

    def __init__(self, *, start_after: int = 0) -> None:
        self._entries: list[_Event | _DeltaRun] = []
        self._ids: list[int] = []  # each entry's (last) id, for bisecting; kept in step
        self._wakers: set[asyncio.Event] = set()
        self.last_id = start_after  # a copy of a log's tail starts after the ids it lacks
        self.finished = False
        self.nbytes = 0

    def append(self, kind: TurnEvent, data: str) -> int:
        """Add one event (its payload already JSON); returns its id."""
        self.last_id += 1
        self._entries.append(_Event(self.last_id, kind, data))
        self._ids.append(self.last_id)
        self.nbytes += len(data) + _ENTRY_OVERHEAD_BYTES
        if kind == TurnEvent.DONE:
            self.finished = True
        self._wake()
        return self.last_id

    def append_delta(self, delta: str) -> int:
        """Add a text delta, coalesced into the current run of deltas; returns its id."""
        self.last_id += 1
        run = self._entries[-1] if self._entries else None
        if not isinstance(run, _DeltaRun):
            run = _DeltaRun(self.last_id)
            self._entries.append(run)
            self._ids.append(self.last_id)
            self.nbytes += _ENTRY_OVERHEAD_BYTES
        before = run.nbytes
        run.add(delta)
        self._ids[-1] = self.last_id
        self.nbytes += run.nbytes - before
        self._wake()
        return self.last_id

    def events_after(self, after: int) -> Iterator[SentEvent]:
        """Every event after id `after`, a partly sent run of deltas as one delta."""
        for entry in self._entries[bisect.bisect_right(self._ids, after) :]:
            if isinstance(entry, _DeltaRun):
                yield entry.id, TurnEvent.TEXT_DELTA, _delta_json(entry.since(after))
            else:
                yield entry.id, entry.kind, entry.data

    async def follow(
        self, after: int = 0, *, idle_timeout_s: float | None = None
    ) -> AsyncIterator[SentEvent | None]:
        """Events after `after`, live until `done`; None after `idle_timeout_s` of quiet.

        A turn that already ended yields what is left (possibly nothing) and stops, so a
        client resuming after the last event is answered at once instead of kept waiting.
        """
        waker = asyncio.Event()
        self._wakers.add(waker)
        try:
            sent = after
            while True:
                waker.clear()
                # Read before the snapshot: events appended while a yield is suspended (the
                # rest of the turn, `done` included) are not in it, and must not be skipped.
                finished = self.finished
                for event in list(self.events_after(sent)):
                    sent = event[0]
                    yield event
                    if event[1] == TurnEvent.DONE:
                        return
                if finished:
                    return
                try:
                    async with asyncio.timeout(idle_timeout_s):
                        await waker.wait()
                except TimeoutError:
                    yield None
        finally:
            self._wakers.discard(waker)

    def encode_after(self, after: int) -> tuple[int, str] | None:
        """The events after id `after` as one text for `ingest` (see the module docstring).

        Returns:
            (first id, text), or None when there is nothing after `after`.
        """
        if after >= self.last_id:
            return None
        lines = []
        for entry in self._entries[bisect.bisect_right(self._ids, after) :]:
            if isinstance(entry, _DeltaRun):
                deltas = orjson.dumps(entry.deltas_after(after)).decode()
                lines.append(f"{max(entry.first_id, after + 1)}\t{_DELTA_RUN}\t{deltas}")
            else:
                lines.append(f"{entry.id}\t{entry.kind}\t{entry.data}")
        return after + 1, "\n".join(lines)

    def ingest(self, text: str) -> None:
        """Append events encoded by `encode_after`; ids must continue this log's.

        Raises:
            ValueError: the text does not start right after this log's last id.
        """
        for line in text.split("\n"):
            first, kind, data = line.split("\t", 2)
            if int(first) != self.last_id + 1:
                raise ValueError(f"event {first} does not follow {self.last_id}")
            if kind == _DELTA_RUN:
                for delta in orjson.loads(data):
                    self.append_delta(delta)
            else:
                self.append(TurnEvent(kind), data)

    def _wake(self) -> None:
        for waker in self._wakers:
            waker.set()


def _delta_json(text: str) -> str:
    return TextDelta(delta=text).model_dump_json()
