"""A turn's event log copied through its encoded form (what PostgreSQL stores) is the same log:
the same ids, payloads byte for byte, and the same coalescing of a partly sent run of deltas."""

from __future__ import annotations

import pytest

from app.turns.events import TurnEvent
from app.turns.log import TurnLog

RAW: list[tuple[TurnEvent, str]] = [
    (TurnEvent.USER_MESSAGE, '{"id":"u","content":"tab\\there, newline\\nthere"}'),
    *((TurnEvent.TEXT_DELTA, d) for d in ["Hel", "lo \u2014 ", "w\u00f6rld", "\n", "!"]),
    (TurnEvent.TOOL_CALL, '{"call_id":"c1","name":"add_task","arguments":"{}"}'),
    (TurnEvent.TOOL_RESULT, '{"call_id":"c1","name":"add_task","output":"ok"}'),
    *((TurnEvent.TEXT_DELTA, d) for d in ["Done", "."]),
    (TurnEvent.ASSISTANT_MESSAGE, '{"content":"Hello \u2014 w\u00f6rld\\n!Done."}'),
    (TurnEvent.DONE, '{"status":"completed"}'),
]


def build(events: list[tuple[TurnEvent, str]]) -> TurnLog:
    """A log as a turn writes it: deltas one by one (coalesced), other events as they come."""
    log = TurnLog()
    for kind, data in events:
        if kind == TurnEvent.TEXT_DELTA:
            log.append_delta(data)
        else:
            log.append(kind, data)
    return log


def sample_log() -> TurnLog:
    return build(RAW)


class TestEncodedCopy:
    def test_copies_from_every_point_serve_every_later_resume_identically(self) -> None:
        original = sample_log()
        assert original.last_id == 12
        for start in range(original.last_id):
            encoded = original.encode_after(start)
            assert encoded is not None
            first_id, text = encoded
            assert first_id == start + 1
            copy = TurnLog(start_after=start)
            copy.ingest(text)
            assert copy.last_id == original.last_id
            assert copy.finished
            for after in range(start, original.last_id + 1):
                assert list(copy.events_after(after)) == list(original.events_after(after))

    def test_batches_written_one_after_another_add_up_to_the_log(self) -> None:
        original = sample_log()
        copy = TurnLog()
        for written, upto in ((0, 3), (3, 4), (4, 9), (9, 12)):
            partial = build(RAW[:upto])  # what the turn had when this batch was written
            encoded = partial.encode_after(written)
            assert encoded is not None
            copy.ingest(encoded[1])
        assert list(copy.events_after(0)) == list(original.events_after(0))
        assert list(copy.events_after(3)) == list(original.events_after(3))

    def test_nothing_to_encode_after_the_last_id(self) -> None:
        assert sample_log().encode_after(12) is None
        assert TurnLog().encode_after(0) is None

    def test_a_copy_refuses_events_that_do_not_follow_its_last(self) -> None:
        encoded = sample_log().encode_after(5)
        assert encoded is not None
        with pytest.raises(ValueError, match="does not follow"):
            TurnLog(start_after=2).ingest(encoded[1])


class TestFollow:
    async def test_a_follower_suspended_while_the_turn_ends_still_gets_every_event(self) -> None:
        """The rest of a turn, `done` included, can be appended while a follower is between
        two events (its client is slow); the follower must still get all of it."""
        log = TurnLog()
        log.append(TurnEvent.USER_MESSAGE, '{"id":"u"}')
        log.append_delta('{"delta":"Got it"}')
        got = []
        async for event in log.follow(0):
            assert event is not None
            got.append(event[1])
            if len(got) == 1:  # the turn finishes while this follower is suspended
                log.append_delta('{"delta":" \u2014 a is 1."}')
                log.append(TurnEvent.ASSISTANT_MESSAGE, '{"content":"Got it \u2014 a is 1."}')
                log.append(TurnEvent.DONE, '{"status":"completed"}')
        assert got == [
            TurnEvent.USER_MESSAGE,
            TurnEvent.TEXT_DELTA,
            TurnEvent.TEXT_DELTA,
            TurnEvent.ASSISTANT_MESSAGE,
            TurnEvent.DONE,
        ]
