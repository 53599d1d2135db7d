"""What every maintenance job, and every operator action on one thread, may use."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from app.config import Settings
from app.db import SessionMaker
from app.memory import MemoryStore
from app.models.base import utc_now
from app.turns.compaction import Compactor


@dataclass(frozen=True)
class JobContext:
    """Explicit dependencies of a job; `clock` is injectable so tests never sleep."""

    sessionmaker: SessionMaker
    memory_store: MemoryStore
    settings: Settings
    clock: Callable[[], datetime] = field(default=utc_now)
    # Called with (done, total) after each batch: the CLI draws its progress bar with it.
    on_progress: Callable[[int, int], None] | None = None
    # This node's id, and where memory lives: the node id for node-local files (SQLite),
    # None for a backend every node shares. Jobs that touch files touch only this node's.
    node_id: str | None = None
    memory_node: str | None = None
    # Recorded with the leases jobs claim (a restarted node frees them at once).
    incarnation: uuid.UUID | None = None
    # Summaries of what prunes removed (None with AGENT_SESSION_COMPACTION=off).
    compactor: Compactor | None = None
