"""Open file descriptors of running processes, sampled from /proc (workload 4).

Counting /proc/<pid>/fd from outside the measured process costs it nothing, and sampling every
few milliseconds catches the peak of descriptors held while turns are in flight.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable
from pathlib import Path

SAMPLE_INTERVAL_S = 0.005


def count_fds(pid: int) -> int | None:
    """How many descriptors `pid` has open now; None when it cannot be read (gone, no /proc)."""
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None


def children(pid: int) -> list[int]:
    """Direct children of `pid` (e.g. uvicorn's worker processes)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            found += [int(p) for p in task.read_text().split()]
        except OSError:
            continue
    return found


class FdSampler:
    """Samples the descriptors of some processes in a background thread; keeps each peak."""

    def __init__(self, pids: Iterable[int] | Callable[[], Iterable[int]]) -> None:
        self._pids = pids if callable(pids) else (lambda fixed=list(pids): fixed)
        self.peaks: dict[int, int] = {}
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="fd-sampler", daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            for pid in self._pids():
                count = count_fds(pid)
                if count is not None and count > self.peaks.get(pid, -1):
                    self.peaks[pid] = count
            self.samples += 1
            self._stop.wait(SAMPLE_INTERVAL_S)

    def __enter__(self) -> FdSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def peak(self) -> int | None:
        """The highest count any one process reached."""
        return max(self.peaks.values()) if self.peaks else None
