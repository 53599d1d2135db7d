"""Command grammar, history reading and reply planning for the offline model.

This module is the "brain" of :mod:`app.assistant.offline_model`: it turns the Responses-API input
items the runner hands to a model into a :class:`Reply` (either one tool call or one text message).
It is kept free of SDK transport types so the grammar can be read, and tested, on plain data. The
grammar itself is documented in the :mod:`app.assistant.offline_model` module docstring.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from app.assistant.offline_summary import OfflineSummary
from app.memory.pruning import is_turn_start
from app.memory.summary import is_summary_item

_LIST_WORDS = r"(?:list|todo list|to-do list|todos|to-dos|tasks|task list)"

# Ordered: the first full match wins, so the specific forms precede the catch-all ones.
_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (kind, re.compile(pattern, re.IGNORECASE))
    for kind, pattern in (
        ("help", r"help|what are you|who are you|what can you do"),
        ("thread", r"thread info|(?:tell me )?about this thread|what is this thread(?: about)?"),
        (
            "recall",
            r"what (?:did|have) i (?:ask|asked|tell|told) you to remember"
            r"|what do you remember(?: about me)?",
        ),
        (
            "first",
            r"what did i (?:say|ask|write) first"
            r"|what was the first thing i (?:said|asked|wrote)|what was my first message",
        ),
        ("remember", r"remember that (?P<fact>.+)"),
        (
            "list",
            r"(?:list|show)(?: me)?(?: all)?(?: of)?(?: my)? (?:tasks|todos|to-dos)"
            rf"|what are my tasks|what(?:'s| is) on my {_LIST_WORDS}",
        ),
        ("add", r"add (?:a )?(?:new )?task:?\s+(?P<title>.+)"),
        ("add", rf"add (?P<title>.+?) to (?:my |the )?{_LIST_WORDS}"),
        ("rename", r"rename (?:\"(?P<qref>[^\"]+)\"|(?P<ref>.+?)) to (?P<title>.+)"),
        ("complete", r"mark (?P<ref>.+?)(?: as)? (?:done|complete|completed|finished)"),
        ("complete", r"(?:complete|finish|done) (?P<ref>.+)"),
        ("delete", rf"(?:delete|remove) (?P<ref>.+?)(?: from (?:my |the )?{_LIST_WORDS})?"),
    )
)
HANDOFF_PREFIX = "transfer_to_"
"""The SDK names a handoff's tool `transfer_to_<agent>`: such a call hands the turn over."""
_REMEMBER = re.compile(r"\bremember that (?P<fact>.+)", re.IGNORECASE)
_NUMBER_REF = re.compile(r"(?:task\s*)?(?:number\s*)?#?(?P<n>\d+)", re.IGNORECASE)

COMMANDS_SUMMARY = (
    '"add task <title>", "list tasks", "complete <number or title>", '
    '"rename <number or title> to <new title>", "delete <number or title>", '
    '"remember that <fact>", "what did I ask you to remember?", "what did I say first?" and "help"'
)
HELP_TEXT = (
    "I'm Threadkeeper's built-in offline model: deterministic, no network, and only a small "
    "command grammar. For a real model, set MODEL_PROVIDER=openai and OPENAI_API_KEY. "
    f"I understand: {COMMANDS_SUMMARY}."
)
FALLBACK_TEXT = (
    f"Sorry, I'm the offline model and didn't understand that. I understand: {COMMANDS_SUMMARY}."
)


@dataclass(frozen=True)
class Intent:
    """A parsed user request; unused fields stay empty so every intent has one shape."""

    kind: str
    ref: str = ""
    title: str = ""
    fact: str = ""


@dataclass(frozen=True)
class ToolStep:
    """One tool call made earlier in the current turn, with its output once it has run."""

    name: str
    arguments: dict[str, Any]
    output: Any


@dataclass(frozen=True)
class Reply:
    """What the model answers: a tool call (``tool`` set) or a final text message."""

    text: str = ""
    tool: str | None = None
    arguments: dict[str, Any] = field(default_factory=dict)


def normalize(text: str) -> str:
    """Collapse whitespace and drop end punctuation so "List tasks!" matches "list tasks"."""
    return " ".join(text.split()).rstrip(".!?").strip()


def unquote(text: str) -> str:
    """Strip one layer of matching quotes, which users often put around titles."""
    text = text.strip()
    for quote in ('"', "'", "\u201c"):
        closing = "\u201d" if quote == "\u201c" else quote
        if len(text) >= 2 and text.startswith(quote) and text.endswith(closing):
            return text[1:-1].strip()
    return text


def parse_command(text: str) -> Intent:
    """Map one user message onto the grammar; anything unrecognised is ``fallback``."""
    cleaned = normalize(text)
    for kind, pattern in _PATTERNS:
        match = pattern.fullmatch(cleaned)
        if match is None:
            continue
        groups = {key: value for key, value in match.groupdict().items() if value}
        ref = groups.get("qref") or groups.get("ref", "")
        return Intent(
            kind=kind,
            ref=unquote(ref),
            title=unquote(groups.get("title", "")),
            fact=groups.get("fact", "").strip(),
        )
    return Intent(kind="fallback")


def as_item_list(items: str | Sequence[Any]) -> list[dict[str, Any]]:
    """Normalise runner input to dicts; a bare string is the SDK's shorthand for one user turn."""
    if isinstance(items, str):
        return [{"role": "user", "content": items}]
    result = []
    for item in items:
        if hasattr(item, "model_dump"):
            item = item.model_dump(exclude_unset=True)
        result.append(dict(item) if isinstance(item, dict) else {})
    return result


def message_text(content: Any) -> str:
    """Concatenate the text parts of a message's content, which may be a str or a part list."""
    if isinstance(content, str):
        return content
    parts = []
    for part in content or []:
        if isinstance(part, dict) and isinstance(part.get("text"), str):
            parts.append(part["text"])
    return "".join(parts)


def user_texts(items: list[dict[str, Any]]) -> list[str]:
    """All user messages of the thread, oldest first; this is the model's only memory."""
    return [message_text(item.get("content")) for item in items if is_turn_start(item)]


def summary_in(items: list[dict[str, Any]]) -> OfflineSummary:
    """What the summary of pruned turns says, if the model was sent one (else nothing)."""
    for item in items:
        if is_summary_item(item):
            return OfflineSummary.parse(message_text(item.get("content")))
    return OfflineSummary()


def split_turn(items: list[dict[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    """Return the current request (last user message) and the items produced after it."""
    for index in range(len(items) - 1, -1, -1):
        if is_turn_start(items[index]):
            return message_text(items[index].get("content")), items[index + 1 :]
    return "", items


def parse_output(output: Any) -> Any:
    """Decode a tool output: JSON, then a Python literal (``str(dict)``), else the raw text."""
    if not isinstance(output, str):
        return output
    try:
        return json.loads(output)
    except ValueError:
        pass
    try:
        return ast.literal_eval(output)
    except (ValueError, SyntaxError):
        return output


def turn_steps(after: list[dict[str, Any]]) -> list[ToolStep]:
    """Pair this turn's function calls with their outputs (by ``call_id``), in call order."""
    outputs = {
        item.get("call_id"): message_text(item.get("output"))
        for item in after
        if item.get("type") == "function_call_output"
    }
    steps = []
    for item in after:
        if item.get("type") != "function_call" or is_handoff(str(item.get("name", ""))):
            continue
        arguments = parse_output(item.get("arguments") or "{}")
        steps.append(
            ToolStep(
                name=str(item.get("name", "")),
                arguments=arguments if isinstance(arguments, dict) else {},
                output=parse_output(outputs.get(item.get("call_id"))),
            )
        )
    return steps


def is_handoff(tool_name: str) -> bool:
    return tool_name.startswith(HANDOFF_PREFIX)


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


def remembered(texts: list[str]) -> list[str]:
    """Every fact the user asked to remember ("remember that <fact>"), in order."""
    facts = []
    for text in texts:
        match = _REMEMBER.search(" ".join(text.split()))
        if match:
            facts.append(match["fact"].rstrip(".!?").strip())
    return facts


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
