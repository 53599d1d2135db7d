"""ChatKit turns run on the turn service: one at a time per thread, stop and retry keep both
stores in step, and the agent answers from its memory (tool calls included)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
from agents import ModelBehaviorError
from agents.testing import ModelStep, ScriptedModel, assistant_message, function_call
from chatkit.types import (
    AssistantMessageItem,
    ThreadAddUserMessageParams,
    ThreadItemDoneEvent,
    ThreadItemRemovedEvent,
    ThreadItemUpdatedEvent,
    ThreadsAddUserMessageReq,
    WorkflowItem,
)

from app.config import Settings
from app.services.leases import BUSY_MESSAGE
from tests.chatkit.client import (
    ChatKitClient,
    created_thread_id,
    errors_in,
    reply_of,
    reply_text,
    texts,
    user_input,
    user_item_of,
)
from tests.conftest import RunningApp, start_app
from tests.factories import logged, memory_items
from tests.gates import Gate, StallingModel
from tests.sse import reply_text as rest_reply_text, send


def add_user_message(thread_id: str, text: str) -> ThreadsAddUserMessageReq:
    params = ThreadAddUserMessageParams(thread_id=thread_id, input=user_input(text))
    return ThreadsAddUserMessageReq(params=params)


def memory_texts(items: list[dict]) -> list[tuple[str, str]]:
    """(role, text) of each message in memory, whichever shape the SDK stored it in."""
    out = []
    for item in items:
        content = item.get("content")
        if isinstance(content, list):
            content = "".join(part.get("text", "") for part in content)
        out.append((str(item.get("role", item.get("type"))), str(content)))
    return out


def running_thread(running) -> str:
    (turn,) = [turn for turn, _ in running.turn_runner._running.values()]
    return str(turn.thread_id)


@dataclass
class StalledTurn:
    """A ChatKit turn ("help") stalled mid-reply, as the stop tests find it."""

    running: RunningApp
    http: httpx.AsyncClient
    kit: ChatKitClient
    streaming: asyncio.Task  # the ChatKit request, still reading the stream
    thread_id: str
    turn: Any  # the turn service's running turn


@asynccontextmanager
async def stalled_help_turn(
    settings: Settings, headers: dict[str, str]
) -> AsyncIterator[StalledTurn]:
    """Start an app whose model stalls after three deltas, and send "help" through ChatKit."""
    model = StallingModel(deltas=3)
    async with start_app(settings, model=model) as running, running.client() as http:
        kit = ChatKitClient(http, headers)
        streaming = asyncio.create_task(kit.create("help"))
        await model.streamed.wait()
        (turn,) = [t for t, _ in running.turn_runner._running.values()]
        yield StalledTurn(running, http, kit, streaming, str(turn.thread_id), turn)


def streamed_text(events) -> str:
    return "".join(
        e.update.delta
        for e in events
        if isinstance(e, ThreadItemUpdatedEvent) and e.update.type.endswith("text_delta")
    )


class TestOneTurnAtATime:
    async def test_a_second_send_while_a_reply_runs_is_a_chatkit_error_and_writes_nothing(
        self, settings, alice
    ) -> None:
        gate = Gate("slow reply")
        model = ScriptedModel([gate.step(), ModelStep(output=[assistant_message("next")])])
        async with start_app(settings, model=model) as running, running.client() as http:
            kit = ChatKitClient(http, alice)
            first = asyncio.create_task(kit.create("one"))
            await gate.entered.wait()
            thread_id = running_thread(running)
            busy = await kit.stream_error(add_user_message(thread_id, "two while one runs"))
            assert (busy.code, busy.message, busy.allow_retry) == ("custom", BUSY_MESSAGE, True)
            # A REST send is refused the same way while the ChatKit turn runs (one lease).
            rest = await http.post(
                f"/api/threads/{thread_id}/messages", json={"text": "three"}, headers=alice
            )
            assert rest.status_code == 409
            gate.opened.set()
            assert reply_text(await first) == "slow reply"
            assert await logged(http, alice, thread_id) == [
                ("user", "one"),
                ("assistant", "slow reply"),
            ]
            assert reply_text(await kit.send(thread_id, "two")) == "next"


class TestMemory:
    async def test_the_agent_remembers_its_tool_calls_across_chatkit_and_rest_turns(
        self, running, client, alice
    ) -> None:
        kit = ChatKitClient(client, alice)
        thread_id = created_thread_id(await kit.create("add task buy milk"))
        await kit.send(thread_id, "remember that the build id is 42")
        # The reply comes from memory, which holds the tool call (not rebuilt from items).
        memory = await memory_items(running, alice, thread_id)
        calls = [i for i in memory if i.get("type") in ("function_call", "function_call_output")]
        assert [(i["type"], i.get("name")) for i in calls] == [
            ("function_call", "add_task"),
            ("function_call_output", None),
        ]
        recall = await send(client, thread_id, "what did I ask you to remember?", alice)
        assert rest_reply_text(recall) == "You asked me to remember: that the build id is 42."
        first = await kit.send(thread_id, "what did I say first?")
        assert reply_text(first) == 'You first said: "add task buy milk"'


class TestStop:
    async def test_aborting_the_stream_stops_the_turn_and_both_stores_keep_the_partial_reply(
        self, settings, alice
    ) -> None:
        async with stalled_help_turn(settings, alice) as stalled:
            stalled.streaming.cancel()  # what ChatKit's stop button does: the request is aborted
            result = await asyncio.wait_for(asyncio.shield(stalled.turn.result), 10)
            assert result.status == "cancelled"
            kept = result.assistant_message
            assert kept is not None
            assert kept.content.startswith("I'm Threadkeeper")
            assert kept.metadata["status"] == "cancelled"
            assert await logged(stalled.http, alice, stalled.thread_id) == [
                ("user", "help"),
                ("assistant", kept.content),
            ]
            assert await memory_items(stalled.running, alice, stalled.thread_id) == [
                {"role": "user", "content": "help"},
                {"role": "assistant", "content": kept.content},
            ]
            # ChatKit reads back the same partial reply, under the id it streamed.
            items = await stalled.kit.all_items(stalled.thread_id)
            assert texts(items) == [("user", "help"), ("assistant", kept.content)]
            assert items[1].id == f"reply_{stalled.turn.id.hex}"
            # The next turn's model input is what the user saw.
            again = await stalled.kit.send(stalled.thread_id, "what did I say first?")
            assert reply_text(again) == 'You first said: "help"'

    async def test_a_rest_stop_ends_the_chatkit_stream_with_the_kept_partial_reply(
        self, settings, alice
    ) -> None:
        async with stalled_help_turn(settings, alice) as stalled:
            stop = await stalled.http.post(
                f"/api/threads/{stalled.thread_id}/turns/{stalled.turn.id}/cancel", headers=alice
            )
            assert stop.status_code == 202
            events = await stalled.streaming
            kept = reply_of(events)
            assert kept.id == f"reply_{stalled.turn.id.hex}"
            assert kept.content[0].text == streamed_text(events)
            assert await logged(stalled.http, alice, stalled.thread_id) == [
                ("user", "help"),
                ("assistant", kept.content[0].text),
            ]
            assert errors_in(events) == []


class TestRetry:
    async def test_retry_rewinds_memory_so_the_discarded_reply_is_forgotten(
        self, running, client, alice
    ) -> None:
        kit = ChatKitClient(client, alice)
        created = await kit.create("remember that A is 1")
        thread_id = created_thread_id(created)
        first = user_item_of(created)
        await kit.send(thread_id, "remember that B is 2")
        events = await kit.retry(thread_id, first.id)
        assert reply_text(events) == "Got it \u2014 I'll remember that A is 1."
        assert texts(await kit.all_items(thread_id)) == [
            ("user", "remember that A is 1"),
            ("assistant", "Got it \u2014 I'll remember that A is 1."),
        ]
        assert memory_texts(await memory_items(running, alice, thread_id)) == [
            ("user", "remember that A is 1"),
            ("assistant", "Got it \u2014 I'll remember that A is 1."),
        ]
        recall = await kit.send(thread_id, "what did I ask you to remember?")
        assert reply_text(recall) == "You asked me to remember: that A is 1."

    async def test_a_rest_retry_of_a_chatkit_message_and_a_chatkit_retry_of_a_rest_message(
        self, running, client, alice
    ) -> None:
        kit = ChatKitClient(client, alice)
        created = await kit.create("remember that A is 1")
        thread_id = created_thread_id(created)
        rest_first = await send(client, thread_id, "remember that B is 2", alice)
        await kit.send(thread_id, "remember that C is 3")
        # ChatKit retries the message REST sent (its item id is the message's UUID).
        await kit.retry(thread_id, rest_first[0].data["id"])
        recall = await kit.send(thread_id, "what did I ask you to remember?")
        assert reply_text(recall) == "You asked me to remember: that A is 1; that B is 2."
        # REST retries the message ChatKit sent (its REST id is the message's UUID).
        (first,) = [
            m
            for m in (await client.get(f"/api/threads/{thread_id}/messages", headers=alice)).json()[
                "data"
            ]
            if m["content"] == "remember that A is 1"
        ]
        url = f"/api/threads/{thread_id}/messages/{first['id']}/retry"
        async with client.stream("POST", url, headers=alice) as response:
            assert response.status_code == 200
            await response.aread()
        recall = await kit.send(thread_id, "what did I ask you to remember?")
        assert reply_text(recall) == "You asked me to remember: that A is 1."
        # The ChatKit item the retried message was sent as survives the rewind.
        items = await kit.all_items(thread_id)
        assert items[0].id == user_item_of(created).id

    async def test_a_retry_while_a_turn_runs_changes_nothing(self, settings, alice) -> None:
        gate = Gate("slow")
        model = ScriptedModel([ModelStep(output=[assistant_message("first")]), gate.step()])
        async with start_app(settings, model=model) as running, running.client() as http:
            kit = ChatKitClient(http, alice)
            created = await kit.create("one")
            thread_id = created_thread_id(created)
            second = asyncio.create_task(kit.send(thread_id, "two"))
            await gate.entered.wait()
            events = await kit.retry(thread_id, user_item_of(created).id)
            (error,) = errors_in(events)
            assert (error.message, error.allow_retry) == (BUSY_MESSAGE, True)
            gate.opened.set()
            await second
            assert [role for role, _ in await logged(http, alice, thread_id)] == [
                "user",
                "assistant",
                "user",
                "assistant",
            ]
            del running

    async def test_retry_of_an_item_that_is_not_a_user_message_is_refused(
        self, client, alice
    ) -> None:
        kit = ChatKitClient(client, alice)
        created = await kit.create("list tasks")
        thread_id = created_thread_id(created)
        refused = await kit.stream_error(_retry(thread_id, reply_of(created).id))
        assert refused.message == (
            f"Item {reply_of(created).id} is not a user message; retry one of those"
        )
        missing = await kit.stream_error(_retry(thread_id, "msg_0123"))
        assert missing.message == "Item msg_0123 not found"
        assert [i.type for i in await kit.all_items(thread_id)] == [
            "user_message",
            "workflow",
            "assistant_message",
        ]


def _retry(thread_id: str, item_id: str):
    from chatkit.types import ThreadRetryAfterItemParams, ThreadsRetryAfterItemReq

    return ThreadsRetryAfterItemReq(
        params=ThreadRetryAfterItemParams(thread_id=thread_id, item_id=item_id)
    )


class TestFailedTurn:
    async def test_a_failed_turn_shows_what_it_kept_then_the_error(self, settings, alice) -> None:
        model = ScriptedModel(
            [
                ModelStep(output=[function_call("add_task", {"title": "once"}, call_id="c1")]),
                ModelStep.raise_error(ModelBehaviorError("garbled after the tool ran")),
            ]
        )
        async with start_app(settings, model=model) as running, running.client() as http:
            kit = ChatKitClient(http, alice)
            events = await kit.create("add task once")
            thread_id = created_thread_id(events)
            (error,) = errors_in(events)
            assert (error.code, error.message, error.allow_retry) == (
                "custom",
                "The model returned an unusable reply",
                True,
            )
            done = [e.item for e in events if isinstance(e, ThreadItemDoneEvent)]
            workflow = next(i for i in done if isinstance(i, WorkflowItem))
            assert [t.title for t in workflow.workflow.tasks] == ["add_task"]
            # What streamed is what is read back: the kept tool call, and an empty reply.
            items = await kit.all_items(thread_id)
            assert [i.id for i in items[1:]] == [workflow.id, reply_of(events).id]
            assert isinstance(items[2], AssistantMessageItem)
            assert items[2].content[0].text == ""
            assert not [e for e in events if isinstance(e, ThreadItemRemovedEvent)]
            del running
