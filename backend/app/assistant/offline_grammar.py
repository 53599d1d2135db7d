"""The offline model's command grammar: which user words mean which request.

:func:`parse_command` maps one user message onto an :class:`Intent`; the texts that describe
the grammar to the user (help, fallback) live beside the patterns so the two cannot drift.
:mod:`app.assistant.offline_planner` turns an intent into a reply, and the summarizer reuses
:func:`remembered` so compaction keeps exactly the facts the grammar can recall. The grammar
itself is documented in the :mod:`app.assistant.offline_model` module docstring.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

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
_REMEMBER = re.compile(r"\bremember that (?P<fact>.+)", re.IGNORECASE)

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


def remembered(texts: list[str]) -> list[str]:
    """Every fact the user asked to remember ("remember that <fact>"), in order."""
    facts = []
    for text in texts:
        match = _REMEMBER.search(" ".join(text.split()))
        if match:
            facts.append(match["fact"].rstrip(".!?").strip())
    return facts
