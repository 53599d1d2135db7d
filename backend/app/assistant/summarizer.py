"""Summarizers: fold what a prune removed into the running summary at the head of memory.

Two, chosen by the model in use (`build_summarizer`):

- `ModelSummarizer`: one short run of the configured model (any SDK `Model`: OpenAI,
  Chat Completions servers, anything else), no tools, no session. Its input is bounded
  (`INPUT_MAX_CHARS`), its output cut to `AGENT_SESSION_SUMMARY_MAX_CHARS`.
- `OfflineSummarizer`: deterministic, for the offline model, which cannot summarize. It keeps
  what the offline grammar answers from (`offline_summary`), in the sentences it reads.

Both are pure: they read messages and return text. Writing the summary, and keeping memory
exactly in step with the log while doing it, is `turns.compaction`'s job.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from agents import Agent, RunConfig, Runner
from agents.models.interface import Model

from app.assistant.offline_grammar import parse_command, remembered
from app.assistant.offline_model import OfflineModel
from app.assistant.offline_summary import OfflineSummary
from app.memory import SUMMARY_PREFIX

# What one model summary reads at most: ~4,000 tokens of transcript, each message at most
# ~500 tokens (tool outputs can be huge). Older messages beyond it are left out, and said so.
INPUT_MAX_CHARS = 16_000
MESSAGE_MAX_CHARS = 2_000


@dataclass(frozen=True)
class LoggedMessage:
    """A message of the PostgreSQL log, as a summarizer reads it."""

    role: str
    content: str
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SummaryText:
    """A summarizer's answer: the summary item's whole text, and what it cost."""

    text: str
    input_tokens: int = 0
    output_tokens: int = 0


class Summarizer(Protocol):
    name: str

    async def summarize(
        self,
        previous: str | None,
        messages: Sequence[LoggedMessage],
        *,
        opening: str | None,
        omitted: int,
    ) -> SummaryText:
        """Fold `messages` into the `previous` summary.

        `opening` is the thread's first user message when no summary has covered it yet;
        `omitted` counts older pruned messages that were left out of `messages`.
        """
        ...


class OfflineSummarizer:
    """The deterministic summary of `offline_summary`, for the offline model."""

    name = "offline"

    def __init__(self, *, max_chars: int) -> None:
        self.max_chars = max_chars

    async def summarize(
        self,
        previous: str | None,
        messages: Sequence[LoggedMessage],
        *,
        opening: str | None,
        omitted: int,
    ) -> SummaryText:
        summary = OfflineSummary.parse(previous)
        if summary.first_message is None and opening is not None:
            summary.first_message = opening
        said = [m.content for m in messages if m.role == "user"]
        summary.facts.extend(remembered(said))
        for text in said:
            intent = parse_command(text)
            if intent.kind == "add" and intent.title:
                summary.tasks.append(intent.title)
        return SummaryText(text=summary.render(self.max_chars))


INSTRUCTIONS = """\
You maintain the running summary of a conversation between a user and an assistant. Older \
messages are being removed from the assistant's memory; your summary is all it will keep of \
them. Fold the new messages into the previous summary and reply with the updated summary \
only: short plain-text bullet points, at most {max_chars} characters in all. Keep, in this \
order of priority: everything the user asked the assistant to remember (word for word), \
facts, names, numbers and preferences the user stated, the user's first message, decisions \
made, tasks and their state, open questions. Drop greetings and small talk. Never invent."""


class ModelSummarizer:
    """One short, tool-less run of the configured model per summary."""

    name = "model"

    def __init__(self, model: Model, *, max_chars: int, tracing: bool = False) -> None:
        self.model = model
        self.max_chars = max_chars
        self._tracing = tracing
        self._agent = Agent(
            name="Threadkeeper summarizer",
            instructions=INSTRUCTIONS.format(max_chars=max_chars - len(SUMMARY_PREFIX) - 1),
            model=model,
        )

    async def summarize(
        self,
        previous: str | None,
        messages: Sequence[LoggedMessage],
        *,
        opening: str | None,
        omitted: int,
    ) -> SummaryText:
        result = await Runner.run(
            self._agent,
            summary_request(previous, messages, opening=opening, omitted=omitted),
            max_turns=1,
            run_config=RunConfig(
                workflow_name="threadkeeper-summary", tracing_disabled=not self._tracing
            ),
        )
        usage = result.context_wrapper.usage
        return SummaryText(
            text=bounded(str(result.final_output or ""), self.max_chars),
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
        )


def summary_request(
    previous: str | None, messages: Sequence[LoggedMessage], *, opening: str | None, omitted: int
) -> str:
    """The one user message a model summary reads: previous summary, then the transcript."""
    body = (previous or "").removeprefix(SUMMARY_PREFIX).strip() or "(none yet)"
    parts = [f"Previous summary:\n{body}"]
    if opening is not None:
        parts.append(f'The conversation began with the user saying: "{_clip(opening)}"')
    lines = [line for message in messages for line in _transcript(message)]
    kept: list[str] = []
    size = 0
    for line in reversed(lines):  # the newest messages matter most
        size += len(line) + 1
        if size > INPUT_MAX_CHARS:
            break
        kept.append(line)
    left_out = omitted + len(lines) - len(kept)
    header = "New messages to fold in, oldest first"
    if left_out:
        header += f" ({left_out} older messages were left out)"
    parts.append(header + ":\n" + "\n".join(reversed(kept)))
    return "\n\n".join(parts)


def _transcript(message: LoggedMessage) -> list[str]:
    lines = []
    for call in message.meta.get("tool_calls") or []:
        lines.append(
            f"  (tool {call.get('name', '')}({_clip(str(call.get('arguments', '')))}) "
            f"returned {_clip(str(call.get('output', '')))})"
        )
    lines.append(f"{message.role}: {_clip(message.content)}")
    return lines


def _clip(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MESSAGE_MAX_CHARS else text[: MESSAGE_MAX_CHARS - 1] + "\u2026"


def bounded(text: str, max_chars: int) -> str:
    """The summary item's text: the prefix, then the model's summary, cut to `max_chars`
    at a line end when one is near (else at the bound)."""
    body = text.strip().removeprefix(SUMMARY_PREFIX).strip()
    whole = f"{SUMMARY_PREFIX}\n{body}"
    if len(whole) <= max_chars:
        return whole
    cut = whole[:max_chars]
    line_end = cut.rfind("\n")
    return cut[:line_end] if line_end > max_chars // 2 else cut


def build_summarizer(model: Model, *, max_chars: int, tracing: bool) -> Summarizer:
    """The offline model cannot summarize: it gets the deterministic summarizer."""
    if isinstance(model, OfflineModel):
        return OfflineSummarizer(max_chars=max_chars)
    return ModelSummarizer(model, max_chars=max_chars, tracing=tracing)
