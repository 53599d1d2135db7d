"""Keyset (cursor) pagination shared by the list endpoints.

The cursor is the id of the last item a client received (ChatKit's `after`); the next page
starts strictly after that item's sort key, so pages never repeat or skip rows when new rows
are inserted meanwhile.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

_T = TypeVar("_T")

MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 20


@dataclass(frozen=True)
class Page(Generic[_T]):
    data: list[_T]
    has_more: bool

    @classmethod
    def from_rows(cls, rows: Sequence[_T], limit: int) -> Page[_T]:
        """Build a page from `limit + 1` fetched rows: the extra row only signals more."""
        return cls(data=list(rows[:limit]), has_more=len(rows) > limit)
