"""The deterministic summary the offline model writes and reads back.

The offline model cannot summarize, so compaction keeps, in fixed sentences, what its
grammar answers from: the user's first message, every "remember that ..." fact, and the tasks
the user added. The grammar reads the same sentences from the summary item it is sent (and
only from it), so recall beyond the cap works exactly when the summary is in memory.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from app.memory import SUMMARY_PREFIX

_FIRST = re.compile(r'^- The user\'s first message was: "(?P<text>.*)"$')
_FACT = re.compile(r"^- The user asked me to remember that (?P<fact>.*)\.$")
_TASKS = re.compile(r"^- Tasks mentioned: (?P<tasks>.*)\.$")
_QUOTED = re.compile(r'"((?:[^"\\]|\\.)*)"')


@dataclass
class OfflineSummary:
    """What the offline grammar can use from turns memory no longer holds."""

    first_message: str | None = None
    facts: list[str] = field(default_factory=list)
    tasks: list[str] = field(default_factory=list)

    def render(self, max_chars: int) -> str:
        """The summary item's text, at most `max_chars` long.

        Over the bound, the oldest tasks go first, then the oldest facts, then the first
        message is shortened: the newest facts are what recall is asked about most.
        """
        tasks, facts, first = list(self.tasks), list(self.facts), self.first_message
        while True:
            text = _render(first, facts, tasks)
            if len(text) <= max_chars:
                return text
            if tasks:
                tasks.pop(0)
            elif facts:
                facts.pop(0)
            elif first:
                first = first[: max(0, len(first) - (len(text) - max_chars) - 1)] or None
            else:
                return text[:max_chars]

    @classmethod
    def parse(cls, text: str | None) -> OfflineSummary:
        """Read a summary back (ours, or any text: lines it does not know are ignored)."""
        summary = cls()
        for line in (text or "").splitlines():
            if match := _FIRST.match(line):
                summary.first_message = match["text"]
            elif match := _FACT.match(line):
                summary.facts.append(match["fact"])
            elif match := _TASKS.match(line):
                summary.tasks.extend(_unescape(t) for t in _QUOTED.findall(match["tasks"]))
        return summary


def _render(first: str | None, facts: list[str], tasks: list[str]) -> str:
    lines = [SUMMARY_PREFIX]
    if first is not None:
        lines.append(f'- The user\'s first message was: "{_escape(first)}"')
    lines.extend(f"- The user asked me to remember that {fact}." for fact in facts)
    if tasks:
        lines.append(f"- Tasks mentioned: {', '.join(f'{_quote(t)}' for t in tasks)}.")
    return "\n".join(lines)


def _escape(text: str) -> str:
    # One line per fact: newlines inside a message would otherwise start a new "line".
    return " ".join(text.split())


def _quote(text: str) -> str:
    return '"' + _escape(text).replace("\\", "\\\\").replace('"', '\\"') + '"'


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text)
