"""A model step a test can hold open: the turn waits at an exact point (an event, no sleep)."""

from __future__ import annotations

import asyncio
from typing import Any

from agents.testing import ModelStep, assistant_message


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
