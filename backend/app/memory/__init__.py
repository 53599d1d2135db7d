"""Agent memory: one SQLite file per user per thread, in the SDK's own schema.

Everything about memory files lives in this package (the store that owns the directory, the
SDK `Session` over one file, the connection pool, the file format, the turn-aligned pruning
rule, failure classification). Turn code depends on the `MemoryStore` protocol
(`memory.protocol`), so another backend is a new module, not a rewrite.
"""

from app.memory.errors import (
    MemoryBusyError,
    MemoryCorruptError,
    MemoryInUseError,
    MemoryUnavailableError,
    MemoryVersionError,
    is_corruption,
)
from app.memory.files import file_bytes
from app.memory.offload import off_loop
from app.memory.protocol import Memory, MemoryStore
from app.memory.pruning import PruneResult
from app.memory.session import MemoryMark, MemorySession, MemoryStats
from app.memory.store import AgentMemoryStore, ErasedFiles
from app.memory.summary import SUMMARY_PREFIX, MemoryHead, StoredSummary, summary_item

__all__ = [
    "SUMMARY_PREFIX",
    "AgentMemoryStore",
    "ErasedFiles",
    "Memory",
    "MemoryBusyError",
    "MemoryCorruptError",
    "MemoryInUseError",
    "MemoryHead",
    "MemoryMark",
    "MemorySession",
    "MemoryStats",
    "MemoryStore",
    "MemoryUnavailableError",
    "MemoryVersionError",
    "PruneResult",
    "StoredSummary",
    "file_bytes",
    "is_corruption",
    "off_loop",
    "summary_item",
]
