"""Running memory-file work off the event loop, without letting a cancellation tear it.

Why: one worker's event loop serves every stream. Memory files are touched through SQLite
calls that can wait on the disk for milliseconds (a commit that syncs a new WAL's header, the
checkpoint a close makes, creating and deleting the `-wal`/`-shm` sidecars, VACUUM, unlinks),
and every such wait on the loop stalls every stream of the worker at once (measured: 39% of
the loop's busy time with 20 conversations). So that work runs in a small pool of threads
owned by the store, and the loop only awaits it.

A task cancelled while its statement runs in a thread must not go on as if the statement had
stopped: it would release the file's lock while the statement still writes, and the next
holder would race it. `run_settled` therefore waits for the thread's outcome before the
cancellation goes through (as the SDK's `_await_mutation` does for its stores).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from typing import TypeVar

_T = TypeVar("_T")

# Threads per process for memory files: enough to overlap several files' disk waits (each
# thread holds at most one connection, counted against the pool's descriptor budget), few
# enough that they do not fight the loop for the GIL.
DEFAULT_IO_THREADS = 4


def io_executor(threads: int = DEFAULT_IO_THREADS) -> ThreadPoolExecutor:
    """The thread pool a memory store runs its file work in."""
    return ThreadPoolExecutor(max_workers=threads, thread_name_prefix="memory-io")


async def run_settled(executor: Executor | None, fn: Callable[[], _T]) -> _T:
    """Run `fn` in `executor` (None: the loop's default) and return its result.

    If the awaiting task is cancelled meanwhile, the cancellation is raised only after `fn`
    has finished (its result or error is dropped): whoever holds the file's lock keeps it
    until nothing of theirs is still running on the file.
    """
    loop = asyncio.get_running_loop()
    future = loop.run_in_executor(executor, fn)
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        while not future.done():
            try:
                await asyncio.wait({future})
            except asyncio.CancelledError:
                continue  # cancelled again: still wait, then raise once
        if not future.cancelled():
            future.exception()  # retrieved, so asyncio does not log it as never retrieved
        raise


async def off_loop(fn: Callable[..., _T], *args: object) -> _T:
    """`run_settled` in the loop's default executor, for code that holds no store."""
    return await run_settled(None, functools.partial(fn, *args))
