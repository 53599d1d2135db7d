"""Drills for the ChatKit front end against real server processes.

- kill -9 during ChatKit streams, several times: every user item the server confirmed
  (`thread.item.done` arrived) and every reply it finished is in PostgreSQL, memory never
  holds a turn the log lacks, and every thread takes a ChatKit turn after the restart.
- ChatKit's stop button over a real socket: the client closes the connection mid-reply, and
  both stores keep the same partial reply (what the client saw, and possibly a few words it
  did not receive before the stop arrived), marked cancelled.

Set DRILL_SEED to replay a run's random choices (timing still varies).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import time
import uuid
from dataclasses import dataclass, field

import httpx
import pytest
from chatkit.types import (
    AssistantMessageItem,
    ErrorEvent,
    InferenceOptions,
    ThreadAddUserMessageParams,
    ThreadCreatedEvent,
    ThreadCreateParams,
    ThreadItemDoneEvent,
    ThreadItemUpdatedEvent,
    ThreadsAddUserMessageReq,
    ThreadsCreateReq,
    ThreadStreamEvent,
    UserMessageInput,
    UserMessageItem,
    UserMessageTextContent,
)
from pydantic import TypeAdapter

from app.services.leases import BUSY_MESSAGE
from tests.drills.conftest import ServerFactory
from tests.drills.harness import bearer, report
from tests.drills.stores import Log, ThreadRef, memory_path, memory_violations, read_memory
from tests.drills.turns import client_for

EVENT: TypeAdapter[ThreadStreamEvent] = TypeAdapter(ThreadStreamEvent)
KILLS = 6
CLIENTS = 3
MAX_THREADS_PER_CLIENT = 4
KILL_DELAY_SECONDS = (0.0, 0.6)
LEASE_SECONDS = 6  # a crashed turn's lease expires within this (the server's setting)
FINAL_TURN_WITHIN_SECONDS = 30.0


def _input(text: str) -> UserMessageInput:
    return UserMessageInput(
        content=[UserMessageTextContent(text=text)],
        attachments=[],
        inference_options=InferenceOptions(),
    )


async def chatkit_stream(
    http: httpx.AsyncClient, headers: dict[str, str], request, on_event=None
) -> tuple[list[ThreadStreamEvent], str | None]:
    """A ChatKit request's events (each parsed), and the transport error that cut it, if any."""
    events: list[ThreadStreamEvent] = []
    try:
        async with http.stream(
            "POST",
            "/chatkit",
            content=request.model_dump_json(),
            headers={**headers, "content-type": "application/json"},
        ) as response:
            assert response.status_code == 200, await response.aread()
            async for line in response.aiter_lines():
                if line.startswith("data: "):
                    event = EVENT.validate_json(line[6:])
                    events.append(event)
                    if on_event is not None:
                        on_event(event)
    except (httpx.HTTPError, json.JSONDecodeError) as e:
        return events, f"{type(e).__name__}: {e}"
    return events, None


@dataclass
class Tally:
    sent: int = 0
    completed: int = 0
    cut_off: int = 0
    busy: int = 0
    in_flight: int = 0
    kills_mid_turn: int = 0
    confirmed_users: dict[str, str] = field(default_factory=dict)  # item id -> thread id
    finished_replies: dict[str, str] = field(default_factory=dict)  # reply id -> thread id
    unexpected: list[str] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)


@dataclass
class Client:
    number: int
    subject: str
    headers: dict[str, str]
    rng: random.Random
    threads: list[str] = field(default_factory=list)
    counter: int = 0

    def next_text(self, round_no: int) -> str:
        self.counter += 1
        return (
            f"remember that r{round_no}c{self.number}n{self.counter} is {self.rng.randrange(999)}"
        )


async def client_round(
    http: httpx.AsyncClient,
    client: Client,
    round_no: int,
    tally: Tally,
    confirmed: asyncio.Event,
    stop: asyncio.Event,
) -> None:
    while not stop.is_set():
        text = client.next_text(round_no)
        if len(client.threads) < MAX_THREADS_PER_CLIENT and client.rng.random() < 0.4:
            request = ThreadsCreateReq(params=ThreadCreateParams(input=_input(text)))
        elif client.threads:
            thread_id = client.rng.choice(client.threads)
            request = ThreadsAddUserMessageReq(
                params=ThreadAddUserMessageParams(thread_id=thread_id, input=_input(text))
            )
        else:
            request = ThreadsCreateReq(params=ThreadCreateParams(input=_input(text)))
        seen_thread: list[str] = []

        def on_event(event: ThreadStreamEvent, seen_thread=seen_thread) -> None:
            if isinstance(event, ThreadCreatedEvent):
                seen_thread.append(event.thread.id)
                client.threads.append(event.thread.id)
            if isinstance(event, ThreadItemDoneEvent):
                if isinstance(event.item, UserMessageItem):
                    tally.confirmed_users[event.item.id] = event.item.thread_id
                    confirmed.set()
                elif isinstance(event.item, AssistantMessageItem):
                    tally.finished_replies[event.item.id] = event.item.thread_id

        tally.sent += 1
        tally.in_flight += 1
        try:
            events, cut = await chatkit_stream(http, client.headers, request, on_event)
        except (httpx.HTTPError, AssertionError):
            return  # the server is gone
        finally:
            tally.in_flight -= 1
        errors = [e for e in events if isinstance(e, ErrorEvent)]
        if cut is not None:
            tally.cut_off += 1
            if stop.is_set() or not events:
                return
        elif errors and errors[0].message == BUSY_MESSAGE:
            tally.busy += 1
        elif errors or not any(isinstance(e, ThreadItemDoneEvent) for e in events):
            tally.unexpected.append(f"round {round_no}: {errors or events[-3:]}")
        else:
            tally.completed += 1


def check_at_rest(log: Log, server, clients: list[Client], tally: Tally, when: str) -> None:
    threads = {t for c in clients for t in c.threads}
    stored_users, stored_replies = set(), set()
    for thread_id in threads:
        for message in log.chatkit_view(thread_id):
            stored_users.add(message["item_id"])
            stored_replies.add(message["reply_id"])
    tally.violations += [
        f"{when}: confirmed user item {item} of thread {thread} is not in PostgreSQL"
        for item, thread in tally.confirmed_users.items()
        if item not in stored_users
    ]
    tally.violations += [
        f"{when}: finished reply {item} of thread {thread} is not in PostgreSQL"
        for item, thread in tally.finished_replies.items()
        if item not in stored_replies
    ]
    refs = [ThreadRef(t, c.subject, c.headers) for c in clients for t in c.threads]
    tally.violations += [f"{when}: {v}" for v in memory_violations(log, server.session_dir, refs)]


class ChatKitLog(Log):
    def chatkit_view(self, thread_id: str) -> list[dict]:
        """Each message's ChatKit id: its stored item's for users, reply_<turn> for replies."""
        return self._query(
            "SELECT coalesce(chatkit_item->>'id', id::text) AS item_id, "
            "'reply_' || replace(coalesce(turn_id, id)::text, '-', '') AS reply_id "
            "FROM messages WHERE thread_id = %s",
            (thread_id,),
        )


async def final_turn(http, headers, thread_id: str) -> list[ThreadStreamEvent]:
    """A ChatKit turn, tried again while the thread is busy (a crashed turn's lease)."""
    deadline = time.monotonic() + FINAL_TURN_WITHIN_SECONDS
    request = ThreadsAddUserMessageReq(
        params=ThreadAddUserMessageParams(
            thread_id=thread_id, input=_input("what did I ask you to remember?")
        )
    )
    while True:
        events, _ = await chatkit_stream(http, headers, request)
        busy = [e for e in events if isinstance(e, ErrorEvent) and e.message == BUSY_MESSAGE]
        if not busy or time.monotonic() > deadline:
            return events
        await asyncio.sleep(0.5)


class TestChatKitCrash:
    @pytest.mark.drill
    async def test_kill_dash_nine_during_chatkit_streams_loses_no_committed_item(
        self, server_factory: ServerFactory, drill_database: str, record_property
    ) -> None:
        seed = int(os.environ.get("DRILL_SEED") or time.time_ns() % 1_000_000_007)
        rng = random.Random(seed)
        run = uuid.uuid4().hex[:8]
        clients = [
            Client(n, f"ck-{run}-{n}", bearer(f"ck-{run}-{n}"), random.Random(rng.random()))
            for n in range(CLIENTS)
        ]
        server = server_factory(
            workers=1, TURN_LEASE_SECONDS=str(LEASE_SECONDS), OFFLINE_MODEL_DELAY_MS="5"
        )
        log, tally = ChatKitLog(drill_database), Tally()
        began = time.monotonic()
        server.start()
        async with client_for(server.base_url, timeout=30.0) as http:
            for round_no in range(1, KILLS + 1):
                confirmed, stop = asyncio.Event(), asyncio.Event()
                tasks = [
                    asyncio.create_task(client_round(http, c, round_no, tally, confirmed, stop))
                    for c in clients
                ]
                async with asyncio.timeout(20):
                    await confirmed.wait()
                await asyncio.sleep(rng.uniform(*KILL_DELAY_SECONDS))
                tally.kills_mid_turn += tally.in_flight > 0
                await asyncio.to_thread(server.kill)
                stop.set()
                async with asyncio.timeout(60):
                    await asyncio.gather(*tasks)
                check_at_rest(log, server, clients, tally, f"after kill {round_no}")
                await asyncio.to_thread(server.start)
            refs = [(c.headers, t) for c in clients for t in c.threads]
            finals = await asyncio.gather(*(final_turn(http, h, t) for h, t in refs))
        stuck = [
            f"{t}: {[e for e in events if isinstance(e, ErrorEvent)] or events[-2:]}"
            for (_, t), events in zip(refs, finals, strict=True)
            if not any(
                isinstance(e, ThreadItemDoneEvent) and isinstance(e.item, AssistantMessageItem)
                for e in events
            )
        ]
        server.stop()
        check_at_rest(log, server, clients, tally, "after the final turns")
        figures = (
            f"chatkit crash drill (seed {seed}): {KILLS} kills ({tally.kills_mid_turn} with a "
            f"turn in flight); {tally.sent} ChatKit requests, {len(tally.confirmed_users)} user "
            f"items confirmed, {len(tally.finished_replies)} replies finished, {tally.completed} "
            f"completed, {tally.cut_off} cut off, {tally.busy} busy; {len(refs)} threads, final "
            f"turns {len(refs) - len(stuck)}/{len(refs)} ok; {len(tally.violations)} violations;"
            f" {time.monotonic() - began:.0f} s"
        )
        report(record_property, "chatkit_crash_figures", figures)
        assert tally.kills_mid_turn > 0
        assert not tally.violations, "\n".join(tally.violations[:10])
        assert not tally.unexpected, "\n".join(tally.unexpected[:10])
        assert not stuck, "\n".join(stuck[:5])


class TestChatKitStop:
    @pytest.mark.drill
    async def test_closing_the_stream_mid_reply_keeps_the_same_partial_reply_in_both_stores(
        self, server_factory: ServerFactory, drill_database: str, record_property
    ) -> None:
        server = server_factory(workers=1, OFFLINE_MODEL_DELAY_MS="60")
        server.start()
        subject = f"ck-stop-{uuid.uuid4().hex[:8]}"
        headers = bearer(subject)
        streamed: list[str] = []
        thread_id = ""
        request = ThreadsCreateReq(params=ThreadCreateParams(input=_input("help")))
        async with client_for(server.base_url) as http:
            async with http.stream(
                "POST",
                "/chatkit",
                content=request.model_dump_json(),
                headers={**headers, "content-type": "application/json"},
            ) as response:
                async for line in response.aiter_lines():
                    if not line.startswith("data: "):
                        continue
                    event = EVENT.validate_json(line[6:])
                    if isinstance(event, ThreadCreatedEvent):
                        thread_id = event.thread.id
                    if isinstance(event, ThreadItemUpdatedEvent) and hasattr(event.update, "delta"):
                        streamed.append(event.update.delta)
                        if len(streamed) == 3:
                            break  # the stop button: the request is aborted here
            # The turn ends cancelled (on its own, within moments): poll its status.
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                thread = (await http.get(f"/api/threads/{thread_id}", headers=headers)).json()
                if thread["last_turn_status"] != "running":
                    break
                await asyncio.sleep(0.05)
            messages = (
                await http.get(f"/api/threads/{thread_id}/messages", headers=headers)
            ).json()["data"]
        server.stop()
        seen = "".join(streamed)
        assert thread["last_turn_status"] == "cancelled"
        user, kept = messages
        assert (user["content"], kept["metadata"]["status"]) == ("help", "cancelled")
        assert kept["content"].startswith(seen)
        log = Log(drill_database)
        items = read_memory(memory_path(server.session_dir, log.user_id(subject), thread_id))
        assert items == [
            {"role": "user", "content": "help"},
            {"role": "assistant", "content": kept["content"]},
        ]
        report(
            record_property,
            "chatkit_stop_figures",
            f"chatkit stop drill: the client saw {len(seen)} characters of the reply, both "
            f"stores kept the same {len(kept['content'])}",
        )
