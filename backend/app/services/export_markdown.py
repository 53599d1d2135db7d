"""One thread as Markdown, for a person to read (the JSON export is for programs).

Messages appear as they were written (the assistant's are Markdown already); each turn's
tool calls are listed before the reply, with long outputs shortened (the JSON has them whole).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime

from app.db import SessionMaker
from app.models.export import ExportMessage, ExportToolCall
from app.services.export import ExportScope, iter_messages, message_fields

MAX_TOOL_TEXT_CHARS = 300
_BACKTICKS = re.compile("`+")


async def stream_markdown(sessionmaker: SessionMaker, scope: ExportScope) -> AsyncIterator[bytes]:
    """The scope's thread as a Markdown document, in pieces."""
    thread = scope.thread
    if thread is None:
        raise ValueError("the Markdown export is of one thread")
    yield (
        f"# {_one_line(thread.title or 'Untitled thread')}\n\n"
        f"*Exported from Threadkeeper by {_one_line(scope.subject)} on "
        f"{_when(scope.exported_at)}. Thread `{thread.id}`, started {_when(thread.created_at)}, "
        f"{thread.message_count} messages.*\n"
    ).encode()
    async for batch in iter_messages(sessionmaker, thread.id, until=scope.exported_at):
        messages = (ExportMessage.model_validate(message_fields(row)) for row in batch)
        yield "".join(render_message(message) for message in messages).encode()


def render_message(message: ExportMessage) -> str:
    who = "You" if message.role == "user" else "Assistant"
    parts = [f"\n---\n\n### {who} · {_when(message.created_at)}\n\n"]
    if message.tool_calls:
        parts.append("Tools used:\n\n")
        parts.extend(f"- {_tool_line(call)}\n" for call in message.tool_calls)
        parts.append("\n")
    parts.append(message.content.rstrip() + "\n")
    return "".join(parts)


def _tool_line(call: ExportToolCall) -> str:
    line = f"**{_one_line(call.name)}** {code(_shorten(call.arguments))}"
    if call.output is not None:
        line += f" → {code(_shorten(call.output))}"
    return line


def code(text: str) -> str:
    """Inline code that survives any backticks inside it (CommonMark: a longer fence)."""
    text = _one_line(text)
    fence = "`" * (max((len(run) for run in _BACKTICKS.findall(text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") or not text.strip() else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _shorten(text: str) -> str:
    return text if len(text) <= MAX_TOOL_TEXT_CHARS else text[: MAX_TOOL_TEXT_CHARS - 1] + "…"


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
