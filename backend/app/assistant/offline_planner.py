"""Reply planning for the offline model: from a thread's items to its next output.

This module is the "brain" of :mod:`app.assistant.offline_model`: it turns the Responses-API input
items the runner hands to a model into a :class:`Reply` (either one tool call or one text message).
It is kept free of SDK transport types so the planning can be read, and tested, on plain data. It
reads the request through :mod:`app.assistant.offline_grammar` and the items through
:mod:`app.assistant.offline_history`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from app.assistant.offline_grammar import (
    FALLBACK_TEXT,
    HELP_TEXT,
    Intent,
    parse_command,
    remembered,
)
from app.assistant.offline_history import (
    ToolStep,
    as_item_list,
    is_handoff,
    split_turn,
    summary_in,
    turn_steps,
    user_texts,
)
from app.assistant.offline_summary import OfflineSummary

_NUMBER_REF = re.compile(r"(?:task\s*)?(?:number\s*)?#?(?P<n>\d+)", re.IGNORECASE)


@dataclass(frozen=True)
class Reply:
    """What the model answers: a tool call (``tool`` set) or a final text message."""

    text: str = ""
    tool: str | None = None
    arguments: dict[str, Any] = field(default_factory=dict)


def output_error(output: Any) -> str | None:
    """Explain why a tool output is unusable, or return None when it is a proper JSON object."""
    if isinstance(output, dict):
        return str(output["error"]) if "error" in output else None
    if output is None:
        return "the tool returned no result"
    return f"the tool returned an unexpected result: {str(output)[:200]}"


def format_tasks(tasks: list[dict[str, Any]]) -> str:
    """Render tasks as the numbered checklist that task references are resolved against."""
    if not tasks:
        return "You have no tasks."
    lines = [
        f"{number}. [{'x' if task.get('done') else ' '}] {task.get('title', '')}"
        for number, task in enumerate(tasks, start=1)
    ]
    return "Your tasks:\n" + "\n".join(lines)


def resolve_task(ref: str, tasks: list[dict[str, Any]]) -> tuple[dict[str, Any] | None, str]:
    """Find the task a reference points at, or explain why it cannot be chosen.

    Numbers are 1-based positions in the same list "list tasks" shows; otherwise an exact
    case-insensitive title wins over a unique substring, so "milk" finds "Buy milk".
    """
    number = _NUMBER_REF.fullmatch(ref)
    if number:
        position = int(number["n"])
        if 1 <= position <= len(tasks):
            return tasks[position - 1], ""
        return None, f"There is no task {position}; you have {len(tasks)} task(s)."
    needle = ref.casefold()
    exact = [task for task in tasks if str(task.get("title", "")).casefold() == needle]
    partial = [task for task in tasks if needle in str(task.get("title", "")).casefold()]
    matches = exact or partial
    if len(matches) == 1:
        return matches[0], ""
    if not matches:
        return None, f'I couldn\'t find a task matching "{ref}". Say "list tasks" to see them.'
    titles = ", ".join(f'"{task.get("title", "")}"' for task in matches)
    return None, f'"{ref}" matches several tasks ({titles}); use its number instead.'


def recall_facts(history: list[str], summary: OfflineSummary | None = None) -> str:
    """Answer "what did I ask you to remember?" from the summary of pruned turns, then every
    "remember that" in the history."""
    facts = [*(summary.facts if summary else []), *remembered(history)]
    if not facts:
        return "You haven't asked me to remember anything yet."
    return f"You asked me to remember: {'; '.join('that ' + fact for fact in facts)}."


def first_message(history: list[str], summary: OfflineSummary | None = None) -> str:
    """Quote the thread's opening user message (from the summary once it was pruned)."""
    if summary is not None and summary.first_message is not None:
        return f'You first said: "{summary.first_message}"'
    if len(history) <= 1:
        return "This is the first thing you've said in this thread."
    return f'You first said: "{history[0]}"'


_ACTIONS = {  # intent kind -> (tool that does the work, phrase used in failure messages)
    "add": ("add_task", "add that task"),
    "list": ("list_tasks", "list your tasks"),
    "complete": ("complete_task", "complete that task"),
    "rename": ("update_task", "rename that task"),
    "delete": ("delete_task", "delete that task"),
}
_LIST_CALL = Reply(tool="list_tasks", arguments={"include_done": True})


def plan_reply(items: str | Sequence[Any], tool_names: set[str]) -> Reply:
    """Decide the next model output for a thread.

    The runner calls the model once per step of a turn, so the decision is re-derived each
    time from the current request plus the tool calls already made after it; no state is kept
    between calls, which keeps the model deterministic and safe to share between requests.
    """
    item_list = as_item_list(items)
    request, after = split_turn(item_list)
    intent = parse_command(request)
    if intent.kind in _ACTIONS:
        handoffs = sorted(name for name in tool_names if is_handoff(name))
        if _ACTIONS[intent.kind][0] not in tool_names and handoffs:
            # Another agent does tasks: hand the turn over (the SDK's handoff), once.
            return Reply(tool=handoffs[0])
        return _plan_task_action(intent, turn_steps(after), tool_names)
    if intent.kind == "thread":
        return _plan_thread(turn_steps(after), tool_names)
    return Reply(text=_plan_text(intent, user_texts(item_list), summary_in(item_list)))


def _plan_thread(steps: list[ToolStep], tool_names: set[str]) -> Reply:
    """`thread info`: call the thread_info tool, then say what it returned."""
    if "thread_info" not in tool_names:
        return Reply(text="I can't look at this thread: the thread_info tool isn't available.")
    if not steps:
        return Reply(tool="thread_info")
    info = steps[-1].output
    error = output_error(info)
    if error:
        return Reply(text=f"Sorry, I couldn't look at this thread: {error}")
    title = f'"{info["title"]}"' if info.get("title") else "untitled"
    return Reply(
        text=f"This thread is {title}: {info.get('messages')} messages since {info.get('started')}."
    )


def _plan_text(intent: Intent, history: list[str], summary: OfflineSummary) -> str:
    if intent.kind == "help":
        return HELP_TEXT
    if intent.kind == "remember":
        return f"Got it \u2014 I'll remember that {intent.fact}."
    if intent.kind == "recall":
        return recall_facts(history, summary)
    if intent.kind == "first":
        return first_message(history, summary)
    return FALLBACK_TEXT


def _plan_task_action(intent: Intent, steps: list[ToolStep], tool_names: set[str]) -> Reply:
    tool, verb = _ACTIONS[intent.kind]
    needed = [tool] if intent.kind in ("add", "list") else ["list_tasks", tool]
    missing = [name for name in needed if name not in tool_names]
    if missing:
        return Reply(text=f"I can't {verb} right now: the {missing[0]} tool isn't available.")
    if intent.kind == "add":
        return _plan_add(intent, steps)
    if intent.kind == "list":
        return _plan_list(steps)
    return _plan_by_reference(intent, steps, tool, verb)


def _plan_add(intent: Intent, steps: list[ToolStep]) -> Reply:
    if not steps:
        return Reply(tool="add_task", arguments={"title": intent.title})
    output = steps[-1].output
    error = output_error(output)
    if error:
        return Reply(text=f"Sorry, I couldn't add that task: {error}")
    return Reply(text=f'Added "{output.get("title", intent.title)}" to your tasks.')


def _listed_tasks(step: ToolStep) -> tuple[list[dict[str, Any]], str | None]:
    error = output_error(step.output)
    if error:
        return [], error
    tasks = step.output.get("tasks")
    if not isinstance(tasks, list):
        return [], "the task list came back malformed"
    return [task for task in tasks if isinstance(task, dict)], None


def _plan_list(steps: list[ToolStep]) -> Reply:
    if not steps:
        return _LIST_CALL
    tasks, error = _listed_tasks(steps[-1])
    if error:
        return Reply(text=f"Sorry, I couldn't list your tasks: {error}")
    return Reply(text=format_tasks(tasks))


def _plan_by_reference(intent: Intent, steps: list[ToolStep], tool: str, verb: str) -> Reply:
    """Two-step flow: list the tasks, resolve the reference against them, then act on it."""
    if not steps:
        return _LIST_CALL
    tasks, error = _listed_tasks(steps[0])
    if error:
        return Reply(text=f"Sorry, I couldn't {verb}: {error}")
    task, problem = resolve_task(intent.ref, tasks)
    if task is None:
        return Reply(text=problem)
    if len(steps) == 1:
        arguments: dict[str, Any] = {"task_id": str(task.get("id", ""))}
        if intent.kind == "rename":
            arguments["title"] = intent.title
        return Reply(tool=tool, arguments=arguments)
    error = output_error(steps[-1].output)
    if error:
        return Reply(text=f"Sorry, I couldn't {verb}: {error}")
    title = task.get("title", "")
    if intent.kind == "complete":
        return Reply(text=f'Marked "{title}" as done.')
    if intent.kind == "rename":
        return Reply(text=f'Renamed "{title}" to "{intent.title}".')
    return Reply(text=f'Deleted "{title}".')
