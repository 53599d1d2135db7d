"""What a failure of a memory file means: busy, damaged, or the machine out of a resource.

The distinction decides what happens to the file. Only real damage quarantines it and
rebuilds memory from the log. A full disk, running out of descriptors or an I/O error says
nothing about the file: it is left alone, the request is a 503 with Retry-After, and a retry
works once the resource is back. (Treating those as corruption used to quarantine healthy
files, fail the rebuild too, and answer a plain-text 500.)
"""

from __future__ import annotations

import errno
import os
import sqlite3
from enum import StrEnum

from app.errors import ConflictError, ServiceUnavailableError

# SQLite primary result codes (the low byte of an extended code).
_SQLITE_BUSY, _SQLITE_LOCKED = 5, 6
_SQLITE_NOMEM, _SQLITE_READONLY, _SQLITE_IOERR, _SQLITE_CORRUPT = 7, 8, 10, 11
_SQLITE_FULL, _SQLITE_CANTOPEN, _SQLITE_NOTADB = 13, 14, 26
_RESOURCE_ERRNOS = {errno.ENOSPC, errno.EMFILE, errno.ENFILE, errno.EDQUOT, errno.EIO, errno.ENOMEM}


class MemoryFailure(StrEnum):
    BUSY = "busy"  # another process holds the write lock: wait, then 503
    CORRUPT = "corrupt"  # the file is damaged: quarantine and rebuild from the log
    UNAVAILABLE = "unavailable"  # disk full, descriptors, I/O: leave the file, 503
    OTHER = "other"  # a bug or something unforeseen: not the file's fault either


class MemoryCorruptError(Exception):
    """The memory file cannot be used (not a database, malformed, rows that are not JSON)."""


class MemoryBusyError(ServiceUnavailableError):
    """The memory file stayed locked by another process past the busy timeout."""


class MemoryUnavailableError(ServiceUnavailableError):
    """The machine cannot read or write memory now (disk full, no descriptors, I/O error)."""


class MemoryVersionError(ServiceUnavailableError):
    """The memory file is in a newer format than this code reads; it is left untouched."""


class MemoryInUseError(ConflictError):
    """Another task of this process holds the memory file (a turn still running)."""

    kind = "ConflictError"  # to clients, the same conflict as a lease held elsewhere


def classify(error: BaseException) -> MemoryFailure:
    """What `error`, raised while using a memory file, means for that file."""
    if isinstance(error, MemoryCorruptError):
        return MemoryFailure.CORRUPT
    if isinstance(error, OSError):
        return MemoryFailure.UNAVAILABLE if error.errno in _RESOURCE_ERRNOS else MemoryFailure.OTHER
    if not isinstance(error, sqlite3.Error):
        return MemoryFailure.OTHER
    code = getattr(error, "sqlite_errorcode", None)
    if code is None:  # raised by us or the sqlite3 module itself: judge by the message
        text = str(error).lower()
        return MemoryFailure.BUSY if "locked" in text or "busy" in text else MemoryFailure.OTHER
    primary = code & 0xFF
    if primary in (_SQLITE_BUSY, _SQLITE_LOCKED):
        return MemoryFailure.BUSY
    if primary in (_SQLITE_CORRUPT, _SQLITE_NOTADB):
        return MemoryFailure.CORRUPT
    if primary in (_SQLITE_FULL, _SQLITE_CANTOPEN, _SQLITE_IOERR, _SQLITE_NOMEM, _SQLITE_READONLY):
        return MemoryFailure.UNAVAILABLE
    return MemoryFailure.OTHER


def is_corruption(error: BaseException) -> bool:
    return classify(error) is MemoryFailure.CORRUPT


def unavailable(error: BaseException) -> MemoryUnavailableError:
    """The 503 to raise for a resource failure (the caller chains the cause).

    The reason is SQLite's fixed message or the errno's name, never a path or user content.
    """
    reason = os.strerror(error.errno) if isinstance(error, OSError) and error.errno else str(error)
    return MemoryUnavailableError(
        f"Agent memory cannot be written right now ({reason}); retry shortly"
    )
