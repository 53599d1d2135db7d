"""A model step a test can hold open: the turn waits at an exact point (an event, no sleep)."""

from __future__ import annotations

import asyncio
from typing import Any

from agents.testing import ModelStep, assistant_message

from app.assistant.offline_model import OfflineModel


class Gate:
    """A `ScriptedModel` step that waits until the test opens the gate, then replies."""

    def __init__(self, reply: str) -> None:
        self.entered = asyncio.Event()
        self.opened = asyncio.Event()
        self.reply = reply

    def step(self) -> ModelStep:
        async def respond(_call: Any) -> ModelStep:
            self.entered.set()
            await self.opened.wait()
            return ModelStep(output=[assistant_message(self.reply)])

        return ModelStep.respond(respond)


class StallingModel(OfflineModel):
    """The offline model, stalling mid-reply: it streams `deltas` text deltas, sets
    `streamed`, then waits (until the run is cancelled). For stop and resume tests."""

    def __init__(self, deltas: int = 3) -> None:
        super().__init__()
        self.deltas = deltas
        self.streamed = asyncio.Event()

    async def stream_response(self, *args: Any, **kwargs: Any):  # type: ignore[override]
        seen = 0
        async for event in super().stream_response(*args, **kwargs):
            yield event
            if getattr(event, "type", "") == "response.output_text.delta":
                seen += 1
                if seen == self.deltas:
                    self.streamed.set()
                    await asyncio.Event().wait()
