"""Every process the benchmark starts, so an interrupted run leaves none behind.

Servers, model servers, load generators and SDK workers each get a process group of their own
(so uvicorn's workers die with their parent) and are recorded here. `stop_all()` runs when the
run ends for any reason, and SIGTERM is turned into the same KeyboardInterrupt as Ctrl-C, so the
`finally` blocks that drop the scratch database and kill servers run on both.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
from typing import Any

_lock = threading.Lock()
_started: dict[int, subprocess.Popen[bytes]] = {}


class Interrupted(KeyboardInterrupt):
    """SIGTERM arrived: unwind exactly as Ctrl-C does."""


def spawn(args: list[str], **kwargs: Any) -> subprocess.Popen[bytes]:
    """Popen in a new process group, recorded until `stop()`."""
    proc: subprocess.Popen[bytes] = subprocess.Popen(args, start_new_session=True, **kwargs)
    with _lock:
        _started[proc.pid] = proc
    return proc


def stop(proc: subprocess.Popen[bytes], grace_s: float = 15.0) -> None:
    """SIGTERM the process group, SIGKILL what is left after `grace_s`, and reap it."""
    for sig, wait in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=wait)
            break
        except subprocess.TimeoutExpired:
            continue
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)  # workers that outlived their parent
    with _lock:
        _started.pop(proc.pid, None)


def stop_all() -> None:
    """Stop whatever is still running; safe to call more than once."""
    with _lock:
        left = list(_started.values())
    for proc in left:
        stop(proc, grace_s=5.0)


def running() -> list[int]:
    """Pids of the recorded processes (their groups may hold more)."""
    with _lock:
        return list(_started)


def _on_sigterm(signum: int, _frame: object) -> None:
    # Only the first signal unwinds; a second one must not abort the cleanup it started.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    raise Interrupted(f"signal {signum}")


def install_signal_handlers() -> None:
    """SIGTERM becomes KeyboardInterrupt in the main thread (SIGINT already is)."""
    signal.signal(signal.SIGTERM, _on_sigterm)
