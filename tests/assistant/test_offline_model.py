"""Tests for the offline model: its grammar, its tool-calling flows and its Responses stream.

The task tools here are test-local ``@function_tool``s over an in-memory dict; they return the
same JSON shapes as the real task tools, so the flows run through the real ``agents.Runner``.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import pytest
from agents import Agent, FunctionTool, RunConfig, Runner, SQLiteSession, function_tool
from agents.items import ModelResponse
from agents.model_settings import ModelSettings
from agents.models.interface import ModelTracing
from openai.types.responses import (
    ResponseFunctionToolCall,
    ResponseOutputMessage,
    ResponseTextDeltaEvent,
)

from app.assistant.offline_grammar import Intent, parse_command
from app.assistant.offline_model import (
    OfflineModel,
    split_text,
)
from app.assistant.offline_planner import resolve_task
from app.assistant.provider import build_model
from app.config import load_settings

RUN_CONFIG = RunConfig(tracing_disabled=True)


class TaskBook:
    """An in-memory task list exposing the five task tools with the production JSON shapes."""

    def __init__(self, titles: tuple[str, ...] = ()) -> None:
        self.tasks: dict[str, dict[str, Any]] = {}
        for title in titles:
            self.add(title)

    def add(self, title: str, notes: str = "") -> dict[str, Any]:
        task = {"id": str(uuid.uuid4()), "title": title, "notes": notes, "done": False}
        self.tasks[task["id"]] = task
        return task

    def titles(self) -> list[str]:
        return [task["title"] for task in self.tasks.values()]

    def tools(self) -> list[FunctionTool]:
        book = self

        @function_tool
        def add_task(title: str, notes: str = "") -> str:
            """Add a task."""
            return json.dumps(book.add(title, notes))

        @function_tool
        def list_tasks(include_done: bool = True) -> str:
            """List tasks, oldest first."""
            tasks = [t for t in book.tasks.values() if include_done or not t["done"]]
            return json.dumps({"tasks": tasks})

        @function_tool
        def update_task(task_id: str, title: str | None = None, notes: str | None = None) -> str:
            """Update a task."""
            if task_id not in book.tasks:
                return json.dumps({"error": f"no task {task_id}"})
            if title is not None:
                book.tasks[task_id]["title"] = title
            if notes is not None:
                book.tasks[task_id]["notes"] = notes
            return json.dumps(book.tasks[task_id])

        @function_tool
        def complete_task(task_id: str) -> str:
            """Complete a task."""
            if task_id not in book.tasks:
                return json.dumps({"error": f"no task {task_id}"})
            book.tasks[task_id]["done"] = True
            return json.dumps(book.tasks[task_id])

        @function_tool
        def delete_task(task_id: str) -> str:
            """Delete a task."""
            task = book.tasks.pop(task_id, None)
            if task is None:
                return json.dumps({"error": f"no task {task_id}"})
            return json.dumps({"deleted": task_id, "title": task["title"]})

        return [add_task, list_tasks, update_task, complete_task, delete_task]

    def agent(self) -> Agent:
        return Agent(name="Threadkeeper", model=OfflineModel(), tools=self.tools())


async def respond(
    items: str | list[dict[str, Any]],
    tools: list[FunctionTool] | None = None,
    settings: ModelSettings | None = None,
) -> ModelResponse:
    """Call ``get_response`` directly, as the runner would."""
    return await OfflineModel().get_response(
        None,
        items,  # type: ignore[arg-type]
        settings or ModelSettings(),
        TaskBook().tools() if tools is None else tools,
        None,
        [],
        ModelTracing.DISABLED,
        previous_response_id=None,
        conversation_id=None,
        prompt=None,
    )


async def stream(items: str | list[dict[str, Any]]) -> list[Any]:
    """Collect every event ``stream_response`` yields."""
    model = OfflineModel()
    return [
        event
        async for event in model.stream_response(
            None,
            items,  # type: ignore[arg-type]
            ModelSettings(),
            TaskBook().tools(),
            None,
            [],
            ModelTracing.DISABLED,
            previous_response_id=None,
            conversation_id=None,
            prompt=None,
        )
    ]


def only_call(response: ModelResponse) -> tuple[str, dict[str, Any]]:
    (item,) = response.output
    assert isinstance(item, ResponseFunctionToolCall)
    return item.name, json.loads(item.arguments)


def only_text(response: ModelResponse) -> str:
    (item,) = response.output
    assert isinstance(item, ResponseOutputMessage)
    return "".join(part.text for part in item.content)  # type: ignore[union-attr]


def user(text: str) -> dict[str, Any]:
    return {"role": "user", "content": text}


def assistant(text: str) -> dict[str, Any]:
    return {
        "type": "message",
        "role": "assistant",
        "content": [{"type": "output_text", "text": text}],
    }


def tool_round(name: str, output: Any, call_id: str = "call_1") -> list[dict[str, Any]]:
    """A function call plus its output, as the runner feeds them back to the model."""
    return [
        {"type": "function_call", "name": name, "arguments": "{}", "call_id": call_id},
        {"type": "function_call_output", "call_id": call_id, "output": output},
    ]


LISTED = json.dumps(
    {
        "tasks": [
            {"id": "id-1", "title": "Buy milk", "notes": "", "done": False},
            {"id": "id-2", "title": "Call mum", "notes": "", "done": True},
            {"id": "id-3", "title": "Buy stamps", "notes": "", "done": False},
        ]
    }
)


class TestParseCommand:
    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("add task Buy milk", Intent("add", title="Buy milk")),
            ("Add task: water plants.", Intent("add", title="water plants")),
            ("add buy eggs to my todo list", Intent("add", title="buy eggs")),
            ("ADD file taxes to my tasks", Intent("add", title="file taxes")),
            ("list tasks", Intent("list")),
            ("List my tasks!", Intent("list")),
            ("show my tasks", Intent("list")),
            ("What are my tasks?", Intent("list")),
            ("complete 2", Intent("complete", ref="2")),
            ("finish task 3", Intent("complete", ref="task 3")),
            ("mark buy milk as done", Intent("complete", ref="buy milk")),
            ("done Call mum", Intent("complete", ref="Call mum")),
            ("rename 1 to Buy oat milk", Intent("rename", ref="1", title="Buy oat milk")),
            ('rename "go to gym" to Swim', Intent("rename", ref="go to gym", title="Swim")),
            ("delete task 2", Intent("delete", ref="task 2")),
            ("remove stamps from my list", Intent("delete", ref="stamps")),
            ("remember that the build id is 42", Intent("remember", fact="the build id is 42")),
            ("What did I ask you to remember?", Intent("recall")),
            ("what did i tell you to remember", Intent("recall")),
            ("What did I say first?", Intent("first")),
            ("help", Intent("help")),
            ("Who are you?", Intent("help")),
            ("what are you", Intent("help")),
            ("tell me a joke", Intent("fallback")),
        ],
    )
    def test_maps_text_to_intent(self, text: str, expected: Intent) -> None:
        assert parse_command(text) == expected


class TestResolveTask:
    TASKS = json.loads(LISTED)["tasks"]

    @pytest.mark.parametrize(
        ("ref", "expected_id"),
        [("2", "id-2"), ("task 3", "id-3"), ("#1", "id-1"), ("call MUM", "id-2"), ("milk", "id-1")],
    )
    def test_finds_task_by_number_or_title(self, ref: str, expected_id: str) -> None:
        task, problem = resolve_task(ref, self.TASKS)
        assert task is not None
        assert task["id"] == expected_id
        assert problem == ""

    def test_number_out_of_range_is_explained(self) -> None:
        task, problem = resolve_task("7", self.TASKS)
        assert task is None
        assert "no task 7" in problem

    def test_ambiguous_substring_names_candidates(self) -> None:
        task, problem = resolve_task("buy", self.TASKS)
        assert task is None
        assert '"Buy milk"' in problem
        assert '"Buy stamps"' in problem

    def test_exact_title_beats_substring(self) -> None:
        tasks = [{"id": "a", "title": "Milk run"}, {"id": "b", "title": "milk"}]
        task, _ = resolve_task("Milk", tasks)
        assert task == {"id": "b", "title": "milk"}


class TestFirstToolCall:
    @pytest.mark.parametrize(
        ("text", "name", "arguments"),
        [
            ("add task Buy milk", "add_task", {"title": "Buy milk"}),
            ("add renew passport to my list", "add_task", {"title": "renew passport"}),
            ("list my tasks", "list_tasks", {"include_done": True}),
            ("complete 1", "list_tasks", {"include_done": True}),
            ("rename 1 to X", "list_tasks", {"include_done": True}),
            ("delete milk", "list_tasks", {"include_done": True}),
        ],
    )
    async def test_command_calls_expected_tool(
        self, text: str, name: str, arguments: dict[str, Any]
    ) -> None:
        assert only_call(await respond(text)) == (name, arguments)

    async def test_only_the_last_user_message_is_the_request(self) -> None:
        items = [user("list tasks"), assistant("You have no tasks."), user("add task Walk dog")]
        assert only_call(await respond(items)) == ("add_task", {"title": "Walk dog"})

    async def test_missing_tool_is_reported_in_text(self) -> None:
        text = only_text(await respond("add task Buy milk", tools=[]))
        assert "add_task tool isn't available" in text

    async def test_tool_choice_none_disables_tools(self) -> None:
        response = await respond("list tasks", settings=ModelSettings(tool_choice="none"))
        assert "list_tasks tool isn't available" in only_text(response)

    async def test_reference_command_needs_its_action_tool_too(self) -> None:
        list_only = [tool for tool in TaskBook().tools() if tool.name == "list_tasks"]
        text = only_text(await respond("delete 1", tools=list_only))
        assert "delete_task tool isn't available" in text


class TestSecondStep:
    @pytest.mark.parametrize(
        ("text", "name", "arguments"),
        [
            ("complete 3", "complete_task", {"task_id": "id-3"}),
            ("mark call mum as done", "complete_task", {"task_id": "id-2"}),
            (
                "rename task 1 to Buy oat milk",
                "update_task",
                {"task_id": "id-1", "title": "Buy oat milk"},
            ),
            ("delete stamps", "delete_task", {"task_id": "id-3"}),
        ],
    )
    async def test_acts_on_the_resolved_task(
        self, text: str, name: str, arguments: dict[str, Any]
    ) -> None:
        items = [user(text), *tool_round("list_tasks", LISTED)]
        assert only_call(await respond(items)) == (name, arguments)

    async def test_unknown_reference_answers_without_second_call(self) -> None:
        items = [user("complete walk the dog"), *tool_round("list_tasks", LISTED)]
        assert 'couldn\'t find a task matching "walk the dog"' in only_text(await respond(items))

    async def test_ambiguous_reference_answers_without_second_call(self) -> None:
        items = [user("delete buy"), *tool_round("list_tasks", LISTED)]
        assert "matches several tasks" in only_text(await respond(items))

    async def test_error_output_is_reported(self) -> None:
        items = [user("add task X"), *tool_round("add_task", '{"error": "title too long"}')]
        assert only_text(await respond(items)) == "Sorry, I couldn't add that task: title too long"

    async def test_non_json_output_is_reported(self) -> None:
        items = [user("list tasks"), *tool_round("list_tasks", "database is down")]
        assert "database is down" in only_text(await respond(items))

    async def test_python_repr_output_is_understood(self) -> None:
        output = str({"tasks": [{"id": "a", "title": "Water plants", "done": True}]})
        items = [user("list tasks"), *tool_round("list_tasks", output)]
        assert only_text(await respond(items)) == "Your tasks:\n1. [x] Water plants"


class TestRunnerTaskFlows:
    async def test_add_then_list_shows_numbered_checklist(self) -> None:
        book = TaskBook()
        added = await Runner.run(book.agent(), "add task Buy milk", run_config=RUN_CONFIG)
        assert added.final_output == 'Added "Buy milk" to your tasks.'
        book.tasks[next(iter(book.tasks))]["done"] = True
        book.add("Call mum")
        listed = await Runner.run(book.agent(), "list tasks", run_config=RUN_CONFIG)
        assert listed.final_output == "Your tasks:\n1. [x] Buy milk\n2. [ ] Call mum"

    async def test_empty_list_says_no_tasks(self) -> None:
        result = await Runner.run(TaskBook().agent(), "show my tasks", run_config=RUN_CONFIG)
        assert result.final_output == "You have no tasks."

    async def test_complete_by_number(self) -> None:
        book = TaskBook(("Buy milk", "Call mum"))
        result = await Runner.run(book.agent(), "complete task 2", run_config=RUN_CONFIG)
        assert result.final_output == 'Marked "Call mum" as done.'
        assert [task["done"] for task in book.tasks.values()] == [False, True]

    async def test_rename_by_title(self) -> None:
        book = TaskBook(("Buy milk", "Call mum"))
        result = await Runner.run(
            book.agent(), "rename call mum to Call dad", run_config=RUN_CONFIG
        )
        assert result.final_output == 'Renamed "Call mum" to "Call dad".'
        assert book.titles() == ["Buy milk", "Call dad"]

    async def test_delete_by_title_substring(self) -> None:
        book = TaskBook(("Buy milk", "Call mum"))
        result = await Runner.run(book.agent(), "remove milk", run_config=RUN_CONFIG)
        assert result.final_output == 'Deleted "Buy milk".'
        assert book.titles() == ["Call mum"]

    async def test_not_found_makes_no_change(self) -> None:
        book = TaskBook(("Buy milk",))
        result = await Runner.run(book.agent(), "delete 5", run_config=RUN_CONFIG)
        assert result.final_output == "There is no task 5; you have 1 task(s)."
        assert book.titles() == ["Buy milk"]


class TestRunnerStreaming:
    async def test_stream_emits_text_deltas_and_tool_items(self) -> None:
        book = TaskBook(("Buy milk", "Call mum"))
        result = Runner.run_streamed(book.agent(), "finish buy milk", run_config=RUN_CONFIG)
        deltas, item_events = [], []
        async for event in result.stream_events():
            if (
                event.type == "raw_response_event"
                and event.data.type == "response.output_text.delta"
            ):
                deltas.append(event.data.delta)
            elif event.type == "run_item_stream_event":
                item_events.append(event.name)
        assert result.final_output == 'Marked "Buy milk" as done.'
        assert len(deltas) >= 2
        assert "".join(deltas) == result.final_output
        assert item_events.count("tool_called") == 2
        assert item_events.count("tool_output") == 2
        assert item_events[-1] == "message_output_created"

    @pytest.mark.parametrize(
        "text", ["add task Buy milk", "rename 1 to Buy bread", "list tasks", "help", "hello"]
    )
    async def test_streamed_and_plain_runs_agree(self, text: str) -> None:
        plain = await Runner.run(TaskBook(("Buy milk",)).agent(), text, run_config=RUN_CONFIG)
        streamed = Runner.run_streamed(TaskBook(("Buy milk",)).agent(), text, run_config=RUN_CONFIG)
        async for _ in streamed.stream_events():
            pass
        assert streamed.final_output == plain.final_output
        assert (
            streamed.context_wrapper.usage.total_tokens == plain.context_wrapper.usage.total_tokens
        )


class TestStreamEvents:
    async def test_text_event_order_and_sequence_numbers(self) -> None:
        events = await stream("help")
        types = [event.type for event in events]
        assert types[:4] == [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added",
        ]
        assert types[-4:] == [
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.completed",
        ]
        assert set(types[4:-4]) == {"response.output_text.delta"}
        assert [event.sequence_number for event in events] == list(range(len(events)))

    async def test_deltas_rebuild_the_final_text(self) -> None:
        events = await stream("help")
        deltas = [event.delta for event in events if isinstance(event, ResponseTextDeltaEvent)]
        completed = events[-1].response
        assert len(deltas) > 2
        assert "".join(deltas) == completed.output[0].content[0].text
        assert "MODEL_PROVIDER=openai" in "".join(deltas)

    async def test_configured_delay_pauses_after_every_delta(self, monkeypatch) -> None:
        pauses: list[float] = []
        real_sleep = asyncio.sleep
        this_task = asyncio.current_task()

        async def record(seconds: float) -> None:
            # The patch replaces asyncio.sleep for every task on the loop; a background task
            # left by an earlier test (a heartbeat, a pool reaper) must not count as the
            # model's pause, so only sleeps taken by this test's own task are recorded.
            if asyncio.current_task() is not this_task:
                await real_sleep(seconds)
                return
            pauses.append(seconds)
            await real_sleep(0)

        model = build_model(load_settings(OFFLINE_MODEL_DELAY_MS=25))
        assert isinstance(model, OfflineModel)
        monkeypatch.setattr("app.assistant.offline_model.asyncio.sleep", record)
        events = [
            event
            async for event in model.stream_response(
                None,
                "help",
                ModelSettings(),
                [],
                None,
                [],
                ModelTracing.DISABLED,
                previous_response_id=None,
                conversation_id=None,
                prompt=None,
            )
        ]
        deltas = [event for event in events if isinstance(event, ResponseTextDeltaEvent)]
        assert pauses == [0.025] * len(deltas)

    async def test_function_call_events_and_completed_response(self) -> None:
        events = await stream("add task Buy milk")
        types = [event.type for event in events]
        assert types == [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.done",
            "response.output_item.done",
            "response.completed",
        ]
        assert events[2].item.arguments == ""
        assert json.loads(events[4].arguments) == {"title": "Buy milk"}
        completed = events[-1].response
        assert completed.status == "completed"
        assert completed.usage.total_tokens > 0
        assert completed.output == (await respond("add task Buy milk")).output


class TestMemoryFromHistory:
    async def test_recall_through_a_session(self) -> None:
        session = SQLiteSession("memory-test", ":memory:")
        agent = TaskBook().agent()
        first = await Runner.run(
            agent, "Remember that the build id is 42.", session=session, run_config=RUN_CONFIG
        )
        assert first.final_output == "Got it \u2014 I'll remember that the build id is 42."
        await Runner.run(
            agent, "remember that staging is down", session=session, run_config=RUN_CONFIG
        )
        recall = await Runner.run(
            agent, "What did I ask you to remember?", session=session, run_config=RUN_CONFIG
        )
        assert recall.final_output == (
            "You asked me to remember: that the build id is 42; that staging is down."
        )

    async def test_without_history_nothing_is_remembered(self) -> None:
        fresh = SQLiteSession("other-thread", ":memory:")
        result = await Runner.run(
            TaskBook().agent(),
            "what did I ask you to remember",
            session=fresh,
            run_config=RUN_CONFIG,
        )
        assert result.final_output == "You haven't asked me to remember anything yet."

    async def test_recall_reads_list_content_parts(self) -> None:
        items = [
            {
                "role": "user",
                "content": [{"type": "input_text", "text": "remember that I like tea"}],
            },
            assistant("Got it."),
            user("what did i tell you to remember?"),
        ]
        assert only_text(await respond(items)) == "You asked me to remember: that I like tea."


class TestFirstMessage:
    async def test_quotes_the_first_user_message(self) -> None:
        items = [
            user("hello there"),
            assistant("Hi"),
            user("list tasks"),
            user("What did I say first?"),
        ]
        assert only_text(await respond(items)) == 'You first said: "hello there"'

    async def test_says_when_this_is_the_first_message(self) -> None:
        text = only_text(await respond("what did I say first"))
        assert text == "This is the first thing you've said in this thread."


class TestHelpAndFallback:
    async def test_help_explains_offline_model_and_real_model_setup(self) -> None:
        text = only_text(await respond("Help"))
        assert "offline model" in text
        assert "deterministic" in text
        assert "no network" in text
        assert "MODEL_PROVIDER=openai" in text
        assert "OPENAI_API_KEY" in text
        assert '"add task <title>"' in text
        assert '"list tasks"' in text

    async def test_unknown_text_lists_commands(self) -> None:
        text = only_text(await respond("what's the weather?"))
        assert text.startswith("Sorry, I'm the offline model and didn't understand that.")
        assert '"remember that <fact>"' in text


class TestUsageAndIds:
    async def test_usage_is_estimated_from_input_and_output(self) -> None:
        short = await respond("help")
        longer = await respond([user("x" * 400), assistant("ok"), user("help")])
        assert short.usage.requests == 1
        assert short.usage.output_tokens > 0
        assert short.usage.total_tokens == short.usage.input_tokens + short.usage.output_tokens
        assert longer.usage.input_tokens >= short.usage.input_tokens + 100

    async def test_same_input_gives_same_reply_and_ids(self) -> None:
        first, second = await respond("add task A"), await respond("add task A")
        assert first.output == second.output
        assert first.response_id == second.response_id

    async def test_call_ids_are_unique_across_a_conversation(self) -> None:
        items: list[dict[str, Any]] = []
        call_ids = []
        for _ in range(2):  # The same request twice: only the growing history differs.
            items.append(user("add task A"))
            call = (await respond(items)).output[0]
            assert isinstance(call, ResponseFunctionToolCall)
            call_ids.append(call.call_id)
            items += [*tool_round("add_task", '{"title": "A"}', call.call_id), assistant("Added")]
        assert len(set(call_ids)) == 2
        assert all(cid.startswith("call_") for cid in call_ids)


class TestSplitText:
    def test_chunks_concatenate_to_the_original(self) -> None:
        text = "Your tasks:\n1. [ ] Buy milk\n2. [x] Call mum"
        chunks = split_text(text)
        assert "".join(chunks) == text
        assert len(chunks) >= 2

    def test_short_text_is_one_chunk(self) -> None:
        assert split_text("Deleted it.") == ["Deleted it."]
