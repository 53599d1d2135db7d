"""Which node this process belongs to, and which start (incarnation) of that node it is.

A *node* is every server process sharing one DATA_DIR: the uvicorn workers of one host or pod.
Its id (`NODE_ID`, by default the host name and the DATA_DIR) survives restarts. Each start of
the node is an *incarnation* with an id of its own, shared by all of its workers, and leases
record it: a node that comes back after a crash (kill -9, OOM) frees at once the leases its
previous incarnation held, instead of leaving those threads busy until the leases expire.

Which process starts a new incarnation is decided with two `flock`s in DATA_DIR/node/, which
the kernel releases when a process dies, however it dies:

- every live process of the node holds `alive.lock` shared;
- a starting process takes `init.lock` exclusively (briefly) and tries `alive.lock`
  exclusively without waiting: if it gets it, no process of the node is alive, so this is a
  new incarnation (its id is written to `incarnation`); otherwise it joins the live one.

So workers that uvicorn starts or restarts join their siblings' incarnation, and only a start
after every process of the node is gone begins a new one. Two servers must never share a
DATA_DIR with different NODE_IDs, nor one NODE_ID with different DATA_DIRs.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import socket
import uuid
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

NODE_DIR = "node"
FILE_MODE = 0o600


@dataclass(frozen=True)
class NodeIdentity:
    """This process's node and incarnation; `fresh`: this process began the incarnation."""

    node_id: str
    incarnation: uuid.UUID
    fresh: bool


def default_node_id(data_dir: Path) -> str:
    """The host name and the DATA_DIR: stable across restarts, distinct for two instances
    side by side on one host."""
    return f"{socket.gethostname()}:{data_dir.resolve()}"


class NodeMembership:
    """Holds this process's place in its node (the shared `alive.lock`) until `close`."""

    def __init__(self, identity: NodeIdentity, alive_fd: int) -> None:
        self.identity = identity
        self._alive_fd: int | None = alive_fd

    def close(self) -> None:
        if self._alive_fd is not None:
            os.close(self._alive_fd)  # releases the flock
            self._alive_fd = None


def join_node(data_dir: Path, node_id: str) -> NodeMembership:
    """Join the node's live incarnation, or begin a new one when no process of it is alive.

    Blocks while another process of the node is starting (milliseconds): call it in a thread.
    """
    directory = data_dir / NODE_DIR
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    init_fd = os.open(directory / "init.lock", os.O_RDWR | os.O_CREAT, FILE_MODE)
    try:
        fcntl.flock(init_fd, fcntl.LOCK_EX)
        alive_fd = os.open(directory / "alive.lock", os.O_RDWR | os.O_CREAT, FILE_MODE)
        try:
            fresh = _try_exclusive(alive_fd)
            incarnation = None if fresh else _read_incarnation(directory)
            if incarnation is None:
                incarnation = uuid.uuid4()
                _write_incarnation(directory, incarnation)
            # Downgrading is not atomic, but every process that could take the lock
            # exclusively in between waits for init.lock, which we hold.
            fcntl.flock(alive_fd, fcntl.LOCK_SH)
        except BaseException:
            os.close(alive_fd)
            raise
    finally:
        os.close(init_fd)  # releases init.lock
    identity = NodeIdentity(node_id=node_id, incarnation=incarnation, fresh=fresh)
    return NodeMembership(identity, alive_fd)


def _try_exclusive(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _read_incarnation(directory: Path) -> uuid.UUID | None:
    try:
        return uuid.UUID((directory / "incarnation").read_text().strip())
    except (OSError, ValueError):
        logger.warning("The node's incarnation file is missing or unreadable; starting a new one")
        return None


def _write_incarnation(directory: Path, incarnation: uuid.UUID) -> None:
    target = directory / "incarnation"
    partial = directory / "incarnation.tmp"
    with contextlib.suppress(FileNotFoundError):
        partial.unlink()
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    with os.fdopen(fd, "w") as f:
        f.write(f"{incarnation}\n")
    partial.replace(target)
