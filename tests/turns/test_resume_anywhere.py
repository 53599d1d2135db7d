"""A stream resumed on another node (another app on the same PostgreSQL, with its own
DATA_DIR) gets exactly the events the original stream sent after Last-Event-ID: no gap, no
duplicate, live until `done`, woken by LISTEN/NOTIFY or, without it, by polling."""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

import sqlalchemy as sa
from sqlmodel import col

from app.assistant.offline_model import OfflineModel
from app.db import session_scope
from app.models import Turn, TurnStatus
from app.services import turn_events
from app.turns import event_feed, stored_events
from app.turns.events import TurnDone, TurnEvent
from app.turns.log import TurnLog
from tests.conftest import RunningApp, node_settings, start_app
from tests.factories import create_thread
from tests.sse import Event, iter_events, send

WITHIN_SECONDS = 20.0


class PausingModel(OfflineModel):
    """The offline model, pausing after `deltas` text deltas until `go` is set."""

    def __init__(self, deltas: int = 3) -> None:
        super().__init__()
        self.deltas = deltas
        self.paused = asyncio.Event()
        self.go = asyncio.Event()

    async def stream_response(self, *args: Any, **kwargs: Any):  # type: ignore[override]
        seen = 0
        async for event in super().stream_response(*args, **kwargs):
            yield event
            if getattr(event, "type", "") == "response.output_text.delta":
                seen += 1
                if seen == self.deltas:
                    self.paused.set()
                    await self.go.wait()


def text_after(events: list[Event], after: int) -> str:
    return "".join(e.data["delta"] for e in events if e.event == "text_delta" and int(e.id) > after)


def others_after(events: list[Event], after: int) -> list[tuple[str | None, str, Any]]:
    return [
        (e.id, e.event, e.data) for e in events if e.event != "text_delta" and int(e.id) > after
    ]


async def resume(client, thread_id: str, turn_id: str, headers, after: int) -> list[Event]:
    url = f"/api/threads/{thread_id}/turns/{turn_id}/events"
    async with client.stream("GET", url, headers={**headers, "Last-Event-ID": str(after)}) as r:
        assert r.status_code == 200, await r.aread()
        return [event async for event in iter_events(r)]


def assert_continues(full: list[Event], tail: list[Event], after: int) -> None:
    """`tail` is exactly what `full` had after id `after` (deltas may be joined)."""
    assert text_after(tail, after) == text_after(full, after)
    assert others_after(tail, after) == others_after(full, after)
    ids = [int(e.id) for e in tail]
    assert ids == sorted(set(ids))
    assert all(i > after for i in ids)
    assert (tail[-1].event, tail[-1].id) == ("done", full[-1].id)


async def two_nodes(settings_factory, tmp_path, model, **b_overrides):
    a = start_app(node_settings(settings_factory, tmp_path, "a"), model=model)
    b = start_app(node_settings(settings_factory, tmp_path, "b", **b_overrides))
    return a, b


class TestResumeOnAnotherNode:
    async def test_a_running_turn_resumes_on_another_node_and_follows_it_live(
        self, settings_factory, tmp_path, alice
    ) -> None:
        model = PausingModel(deltas=4)
        a_app, b_app = await two_nodes(settings_factory, tmp_path, model)
        async with a_app as a, b_app as b, a.client() as on_a, b.client() as on_b:
            await b.turn_runner.event_feed.wait_ready()
            assert b.turn_runner.event_feed.listening
            thread_id = await create_thread(on_a, alice)
            original = asyncio.create_task(
                send(on_a, thread_id, "remember that the build id is 42", alice)
            )
            async with asyncio.timeout(WITHIN_SECONDS):
                await model.paused.wait()
                (turn_id,) = [str(t) for t in a.turn_runner._running]
                writer = a.turn_runner.event_writer
                assert writer is not None
                await writer.flush()  # the events so far are in PostgreSQL
                resumed = asyncio.create_task(resume(on_b, thread_id, turn_id, alice, 2))
                # B follows the turn before the rest of its events exist: they come live.
                await b.turn_runner.event_feed.wait_followed(uuid.UUID(turn_id))
                model.go.set()
                full, tail = await original, await resumed
            assert_continues(full, tail, after=2)
            assert text_after(tail, 2)  # the resume started inside the reply
            assert b.turn_runner.held_turns == 0

    async def test_a_finished_turn_resumes_anywhere_from_any_event(
        self, settings_factory, tmp_path, alice
    ) -> None:
        a_app, b_app = await two_nodes(settings_factory, tmp_path, None)
        async with a_app as a, b_app as b, a.client() as on_a, b.client() as on_b:
            thread_id = await create_thread(on_a, alice)
            full = await send(on_a, thread_id, "add task buy milk", alice)
            turn_id = full[0].data["metadata"]["turn_id"]
            async with asyncio.timeout(WITHIN_SECONDS):
                while a.turn_runner.held_turns:  # the writer is on its next tick
                    await a.turn_runner.event_writer.flush()
                for after in range(int(full[-1].id) + 1):
                    tail = await resume(on_b, thread_id, turn_id, alice, after)
                    if after == int(full[-1].id):
                        assert tail == []
                    else:
                        assert_continues(full, tail, after)
                # The node that ran it no longer holds it, and reads it back the same way.
                assert_continues(full, await resume(on_a, thread_id, turn_id, alice, 1), 1)

    async def test_unknown_turns_and_other_threads_are_404_on_every_node(
        self, settings_factory, tmp_path, alice, bob
    ) -> None:
        a_app, b_app = await two_nodes(settings_factory, tmp_path, None)
        async with a_app as a, b_app as b, a.client() as on_a, b.client() as on_b:
            thread_id = await create_thread(on_a, alice)
            turn_id = (await send(on_a, thread_id, "list tasks", alice))[0].data["metadata"][
                "turn_id"
            ]
            await a.turn_runner.event_writer.flush()
            elsewhere = await create_thread(on_a, alice)
            for client in (on_a, on_b):
                for url, headers in (
                    (f"/api/threads/{thread_id}/turns/{uuid.uuid4()}/events", alice),
                    (f"/api/threads/{elsewhere}/turns/{turn_id}/events", alice),
                    (f"/api/threads/{thread_id}/turns/{turn_id}/events", bob),
                ):
                    assert (await client.get(url, headers=headers)).status_code == 404


class TestWithoutListen:
    async def test_listen_that_never_delivers_is_reported_and_resumes_poll(
        self, settings_factory, tmp_path, alice, test_database, caplog
    ) -> None:
        # LISTEN on another database succeeds but never sees this one's notifications:
        # exactly what a transaction-mode pooler does.
        silent = test_database.sibling_url("postgres")
        model = PausingModel(deltas=2)
        a_app, b_app = await two_nodes(
            settings_factory, tmp_path, model, DATABASE_LISTEN_URL=silent, TURN_EVENTS_POLL_MS=50
        )
        async with a_app as a, b_app as b, a.client() as on_a, b.client() as on_b:
            logging.getLogger().addHandler(caplog.handler)  # the app's logging replaced it
            with caplog.at_level(logging.WARNING, logger="app.turns.event_feed"):
                await b.turn_runner.event_feed.wait_ready()
                assert not b.turn_runner.event_feed.listening
                thread_id = await create_thread(on_a, alice)
                original = asyncio.create_task(send(on_a, thread_id, "list tasks", alice))
                async with asyncio.timeout(WITHIN_SECONDS):
                    await model.paused.wait()
                    (turn_id,) = [str(t) for t in a.turn_runner._running]
                    await a.turn_runner.event_writer.flush()
                    resumed = asyncio.create_task(resume(on_b, thread_id, turn_id, alice, 1))
                    await b.turn_runner.event_feed.wait_followed(uuid.UUID(turn_id))
                    model.go.set()
                    full, tail = await original, await resumed
                assert_continues(full, tail, after=1)
        assert any("receives no notifications" in r.getMessage() for r in caplog.records)


async def add_turn(
    running: RunningApp, thread_id: str, headers, turn_id: uuid.UUID, **fields: Any
) -> None:
    """The turns row of a turn run elsewhere (its node wrote the events, then maybe died)."""
    user_id = await running.user_id(headers)
    async with session_scope(running.sessionmaker) as db:
        db.add(Turn(id=turn_id, thread_id=uuid.UUID(thread_id), user_id=user_id, **fields))


async def write_log(running: RunningApp, turn_id: uuid.UUID, log: TurnLog) -> None:
    """Write `log` from its first event as one batch, as the event writer (re)writes it."""
    async with session_scope(running.sessionmaker) as db:
        first, text = log.encode_after(0)  # type: ignore[misc]
        await turn_events.write_batches(
            db, [turn_events.EventBatch(turn_id, first, log.last_id, text)]
        )


def end(log: TurnLog, turn_id: uuid.UUID) -> None:
    log.append(
        TurnEvent.DONE, TurnDone(turn_id=turn_id, status=TurnStatus.COMPLETED).model_dump_json()
    )


class TestTurnWhoseNodeDied:
    async def test_its_stream_ends_with_an_interrupted_error(
        self, settings, alice, running: RunningApp, monkeypatch
    ) -> None:
        monkeypatch.setattr(stored_events, "ORPHAN_GRACE_SECONDS", 0.1)
        monkeypatch.setattr(event_feed, "SAFETY_POLL_SECONDS", 0.1)
        async with running.client() as client:
            thread_id = await create_thread(client, alice)
            turn_id, log = uuid.uuid4(), TurnLog()
            log.append_delta("half a rep")  # what its node wrote before it was killed
            await add_turn(running, thread_id, alice, turn_id)
            await write_log(running, turn_id, log)
            async with asyncio.timeout(WITHIN_SECONDS):
                tail = await resume(client, thread_id, str(turn_id), alice, 0)
        assert [(e.id, e.event) for e in tail] == [
            ("1", "text_delta"),
            ("2", "error"),
            ("3", "done"),
        ]
        assert tail[1].data == {
            "code": "interrupted",
            "message": stored_events.INTERRUPTED.message,
            "retryable": True,
        }
        assert tail[2].data == {"turn_id": str(turn_id), "status": "failed"}


class TestBatchWrittenTwice:
    async def test_a_rewrite_after_a_lost_commit_keeps_the_longer_batch(
        self, settings, alice, running: RunningApp, monkeypatch
    ) -> None:
        """A write whose commit went through but whose answer was lost (the writer's timeout
        fired) is retried from the same first id with the events that came meanwhile: the
        stored batch must grow to them, or the stream ends short and a resume invents an end."""
        monkeypatch.setattr(stored_events, "ORPHAN_GRACE_SECONDS", 0.1)
        monkeypatch.setattr(event_feed, "SAFETY_POLL_SECONDS", 0.1)
        async with running.client() as client:
            thread_id = await create_thread(client, alice)
            turn_id, log = uuid.uuid4(), TurnLog()
            log.append_delta("Your tasks")
            await add_turn(running, thread_id, alice, turn_id)
            await write_log(running, turn_id, log)
            log.append_delta(": none.")
            end(log, turn_id)
            async with session_scope(running.sessionmaker) as db:
                await db.exec(
                    sa.update(Turn)
                    .where(col(Turn.id) == turn_id)
                    .values(status=TurnStatus.COMPLETED, finished_at=sa.func.now())
                )
            await write_log(running, turn_id, log)  # the retry of a write whose answer was lost
            async with asyncio.timeout(WITHIN_SECONDS):
                whole = await resume(client, thread_id, str(turn_id), alice, 0)
                at_end = await resume(client, thread_id, str(turn_id), alice, log.last_id)
        assert [(e.id, e.event) for e in whole] == [("2", "text_delta"), ("3", "done")]
        assert text_after(whole, 0) == "Your tasks: none."
        assert whole[1].data == {"turn_id": str(turn_id), "status": "completed"}
        assert at_end == []

    async def test_a_follower_that_read_the_shorter_batch_gets_the_rest(
        self, alice, running: RunningApp
    ) -> None:
        async with running.client() as client:
            thread_id = await create_thread(client, alice)
        turn_id, log = uuid.uuid4(), TurnLog()
        log.append_delta("Your tasks")
        await add_turn(running, thread_id, alice, turn_id)
        await write_log(running, turn_id, log)
        stored = stored_events.StoredTurnEvents(
            running.sessionmaker, running.turn_runner.event_feed, uuid.UUID(thread_id), turn_id
        )
        followed = stored.follow(0)
        async with asyncio.timeout(WITHIN_SECONDS):
            first_event = await anext(followed)
            log.append_delta(": none.")
            end(log, turn_id)
            await write_log(running, turn_id, log)  # the retry of a write whose answer was lost
            rest = [event async for event in followed]
        assert first_event is not None
        assert [first_event[:2], *(e[:2] for e in rest if e is not None)] == [
            (1, TurnEvent.TEXT_DELTA),
            (2, TurnEvent.TEXT_DELTA),
            (3, TurnEvent.DONE),
        ]
        assert [e[2] for e in rest if e is not None and e[1] == TurnEvent.TEXT_DELTA] == [
            '{"delta":": none."}'
        ]


class TestResumeFromPostgresAtTheEnd:
    async def test_at_or_past_the_last_stored_event_closes_with_nothing(
        self, alice, running: RunningApp, monkeypatch
    ) -> None:
        """A finished turn this worker no longer holds is resumed from PostgreSQL: a client
        at or past its last event gets nothing, not an ending made up after the grace."""
        monkeypatch.setattr(event_feed, "SAFETY_POLL_SECONDS", 0.1)
        async with running.client() as client:
            thread_id = await create_thread(client, alice)
            turn_id, log = uuid.uuid4(), TurnLog()
            log.append_delta("Your tasks: none.")
            end(log, turn_id)
            await add_turn(running, thread_id, alice, turn_id, status=TurnStatus.COMPLETED)
            await write_log(running, turn_id, log)
            # Well inside the grace after which a silent turn's stream is ended for it.
            async with asyncio.timeout(stored_events.ORPHAN_GRACE_SECONDS / 2):
                tails = [
                    await resume(client, thread_id, str(turn_id), alice, after)
                    for after in (log.last_id, log.last_id + 50)
                ]
                before_done = await resume(client, thread_id, str(turn_id), alice, 1)
        assert tails == [[], []]
        assert [(e.id, e.event) for e in before_done] == [("2", "done")]


class TestExpiry:
    async def test_events_go_once_the_turn_ended_longer_ago_than_the_replay_window(
        self, running: RunningApp, client, alice
    ) -> None:
        thread_id = await create_thread(client, alice)
        turn_id = (await send(client, thread_id, "list tasks", alice))[0].data["metadata"][
            "turn_id"
        ]
        await running.turn_runner.event_writer.flush()
        url = f"/api/threads/{thread_id}/turns/{turn_id}/events"
        from app.scheduler.registry import run_job

        await run_job("expire-turn-events", running.state["job_context"], trigger="test")
        assert (await client.get(url, headers=alice)).status_code == 200  # within the window
        async with session_scope(running.sessionmaker) as db:
            await db.exec(
                sa.update(Turn)
                .where(Turn.id == uuid.UUID(turn_id))
                .values(finished_at=sa.func.now() - sa.text("interval '301 seconds'"))
            )
        run = await run_job("expire-turn-events", running.state["job_context"], trigger="test")
        assert run.counts["removed"] >= 1
        assert (await client.get(url, headers=alice)).status_code == 404
