"""The server's mutable state, shared between the test's thread and the server's event loop.

Tests enqueue steps and read recorded requests from their own thread while the server runs
on a loop in another thread (or process), so everything a test touches is guarded by one lock,
and waiting for a request is a condition wait, never a sleep.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from tests.model_server.conversations import ConversationStore
from tests.model_server.steps import Step, ToolCall, as_step

DEFAULT_MODELS = ("gpt-5-mini", "gpt-4.1-mini", "gpt-4o-mini", "llama3.2")
"""Models the server knows; the app's default MODEL is first. Others get 404 model_not_found."""
FIXED_TOKENS = 10
MODEL_PATHS = ("/v1/chat/completions", "/v1/responses")

Mode = Literal["grammar", "fixed"]


@dataclass(frozen=True)
class ServerConfig:
    """How the server behaves when no script step is queued.

    Attributes:
        api_key: When set, any other bearer token gets 401 invalid_api_key.
        models: Model ids that exist; others get 404 model_not_found.
        mode: "grammar" answers from the history with the offline grammar; "fixed" answers
            every request with `tokens` counting tokens ("tok1 tok2 ..."), or with N when
            the last user message says `[tokens=N]` (so one server serves several lengths).
        tokens: Fixed mode: deltas per reply (default 10). Grammar mode: the reply is split
            into at most this many deltas (default: one per word).
        token_delay: Seconds between consecutive deltas of a default reply.
        first_token_delay: Seconds before the first delta of a default reply (a real model's
            time to first token).
        context_window: When set, a prompt over this many tokens gets 400
            context_length_exceeded.
    """

    api_key: str | None = None
    models: tuple[str, ...] = DEFAULT_MODELS
    mode: Mode = "grammar"
    tokens: int | None = None
    token_delay: float = 0.0
    first_token_delay: float = 0.0
    context_window: int | None = None


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the server received it; `body` is the parsed JSON (or the raw text)."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any
    request_id: str

    @property
    def is_model_call(self) -> bool:
        return self.method == "POST" and self.path in MODEL_PATHS


class HangGate:
    """Holds hanging streams until released; rebound to the loop of every server run."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._event: asyncio.Event | None = None

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """Called on the server loop when it starts, so waits and releases use that loop."""
        self._loop, self._event = loop, asyncio.Event()

    async def wait(self) -> None:
        assert self._event is not None, "the gate is bound when the server starts"
        await self._event.wait()

    def release(self) -> None:
        """Release every hanging stream (thread-safe); later hangs hang until the next release."""
        loop, event = self._loop, self._event
        if loop is None or event is None or loop.is_closed():
            return
        self._event = asyncio.Event()
        loop.call_soon_threadsafe(event.set)


@dataclass
class ServerState:
    """Config, script queue, recorded requests, uploaded traces and server-side history.

    `conversations` and `responses` (stored Responses output, for `previous_response_id`) are
    only touched on the server's loop, apart from `reset()` between tests.
    """

    config: ServerConfig = field(default_factory=ServerConfig)
    keep: int | None = None
    """Recorded requests, trace uploads and stored responses to keep; None keeps all. A long
    benchmark run sets a bound so the server's memory stays flat."""
    hangs: HangGate = field(default_factory=HangGate)
    conversations: ConversationStore = field(default_factory=ConversationStore)
    responses: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    _default_config: ServerConfig = field(init=False)
    _queue: deque[Step] = field(default_factory=deque)
    _requests: deque[RecordedRequest] = field(init=False)
    _traces: deque[dict[str, Any]] = field(init=False)
    _changed: threading.Condition = field(default_factory=threading.Condition)

    def __post_init__(self) -> None:
        self._default_config = self.config
        self._requests = deque(maxlen=self.keep)
        self._traces = deque(maxlen=self.keep)

    def configure(self, **changes: Any) -> None:
        """Change config fields for this server until the next `reset()`."""
        with self._changed:
            self.config = replace(self.config, **changes)

    def enqueue(self, *steps: Step | Iterable[ToolCall]) -> None:
        """Queue replies for the next model requests; a list of ToolCalls is one parallel reply."""
        with self._changed:
            self._queue.extend(as_step(step) for step in steps)

    def next_step(self) -> Step | None:
        with self._changed:
            return self._queue.popleft() if self._queue else None

    @property
    def pending(self) -> int:
        """Steps still queued: a test that scripted N replies can check all were used."""
        with self._changed:
            return len(self._queue)

    def record(self, request: RecordedRequest) -> None:
        with self._changed:
            self._requests.append(request)
            self._changed.notify_all()

    def store_response(self, response_id: str, items: list[dict[str, Any]]) -> None:
        """Keep a response's full history for `previous_response_id` (the oldest go first)."""
        self.responses[response_id] = items
        if self.keep is not None and len(self.responses) > self.keep:
            del self.responses[next(iter(self.responses))]

    def record_trace(self, payload: dict[str, Any]) -> None:
        with self._changed:
            self._traces.append(payload)
            self._changed.notify_all()

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._changed:
            return list(self._requests)

    @property
    def traces(self) -> list[dict[str, Any]]:
        """Every trace-ingest upload body, oldest first."""
        with self._changed:
            return list(self._traces)

    def wait_until(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """Block until `predicate()` holds (checked on every request); False on timeout."""
        with self._changed:
            return self._changed.wait_for(predicate, timeout)

    def reset(self) -> None:
        """Forget requests, traces, steps and stored history; restore the config; release hangs."""
        with self._changed:
            self.config = self._default_config
            self._queue.clear()
            self._requests.clear()
            self._traces.clear()
            self.conversations.clear()
            self.responses.clear()
        self.hangs.release()
