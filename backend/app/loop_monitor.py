"""A probe of the event loop's lag: how late a timer fires, as a Prometheus histogram.

One worker streams hundreds of replies at once; anything that blocks its loop (disk I/O,
a long computation) delays every stream at the same moment. The probe asks to wake every
`interval` seconds and records how much later than asked it woke: on a healthy worker
that is well under a millisecond.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from app.metrics import LOOP_LAG

DEFAULT_INTERVAL_SECONDS = 0.05


class LoopLagProbe:
    def __init__(self, interval_s: float = DEFAULT_INTERVAL_SECONDS) -> None:
        self._interval_s = interval_s
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="loop-lag-probe")

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            asked = time.perf_counter()
            await asyncio.sleep(self._interval_s)
            LOOP_LAG.observe(max(0.0, time.perf_counter() - asked - self._interval_s))
