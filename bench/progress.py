"""What `make bench` is doing right now, on stderr: the workload, its phase and how far it is.

A full run takes minutes; without this it printed nothing until the table. Workloads call
`phase()` and `advance()`; when no progress display is active (tests, imports) they do nothing.
The table itself still goes to stdout, so `make bench > table.txt` keeps only the results.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

_console = Console(stderr=True)
_progress: Progress | None = None
_phase: TaskID | None = None


@contextmanager
def display() -> Iterator[None]:
    """Show progress for the duration of the run."""
    global _progress, _phase
    _progress = Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=_console,
        transient=False,
    )
    try:
        with _progress:
            yield
    finally:
        _progress, _phase = None, None


def workload(name: str, index: int, count: int) -> None:
    """A workload starts: one line in the log, and a fresh phase bar."""
    if _progress is None:
        return
    _progress.console.log(f"[bold]{name}[/] ({index}/{count}) started")
    phase(f"{name}: starting")


def finished(name: str, seconds: float, error: str | None = None) -> None:
    if _progress is None:
        return
    outcome = f"[red]failed[/]: {error}" if error else "done"
    _progress.console.log(f"[bold]{name}[/] {outcome} in {seconds:.0f} s")


def phase(description: str, total: int | None = None) -> None:
    """A new step within the workload, e.g. "w8 service 100 tokens", with `total` units."""
    global _phase
    if _progress is None:
        return
    if _phase is not None:
        _progress.remove_task(_phase)
    _phase = _progress.add_task(description, total=total)


def advance(units: int = 1) -> None:
    if _progress is not None and _phase is not None:
        _progress.advance(_phase, units)


def log(message: str) -> None:
    """A line above the bars (e.g. "server up on :8812"), timestamped."""
    if _progress is not None:
        _progress.console.log(message)


def wait(seconds: float, description: str) -> None:
    """Sleep visibly: a phase that counts the seconds."""
    phase(description, total=max(1, round(seconds)))
    end = time.monotonic() + seconds
    while (left := end - time.monotonic()) > 0:
        time.sleep(min(1.0, left))
        advance()
