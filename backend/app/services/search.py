"""Full-text search over the caller's thread titles and messages, ranked, keyset-paginated.

Every query is scoped to one user through `threads.user_id`, so another user's content can
never match. Results are ordered by (rank, created_at, id), all descending: the id breaks
ties between equal ranks, so the order is total and a page boundary is exact. The cursor
carries that key (and a fingerprint of the query it belongs to); the next page starts
strictly after it. No OFFSET: a deep page costs what the first one does.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel.ext.asyncio.session import AsyncSession

from app.errors import BadRequestError
from app.models.search import SearchHit
from app.services.pagination import Page

# ts_headline marks matches with two private-use characters, removed from the text first,
# so a snippet is plain text plus offsets: no markup a client could mistake for HTML.
START_MARK, STOP_MARK = "\ue000", "\ue001"
# A short text is shown whole; a long one as up to two fragments with each match in the
# middle of its context (fragment mode cuts a short text down to the words before a match).
SHORT_TEXT_CHARS = 240
_MARKS = f"StartSel={START_MARK}, StopSel={STOP_MARK}"
SHORT_HEADLINE = f"{_MARKS}, MaxWords=40, MinWords=20"
LONG_HEADLINE = f'{_MARKS}, MaxWords=30, MinWords=15, MaxFragments=2, FragmentDelimiter=" … "'


# Both hit kinds in one ranked list; the tsquery is a constant (an immutable function of
# bound values), so the planner estimates it from the column statistics and picks the GIN
# index for rare terms or the user's own threads for common ones.
_SEARCH = sa.text(
    """
    WITH hits AS (
        SELECT 'message' AS kind, m.id, m.thread_id, m.role, m.created_at,
               ts_rank(m.search_vector, websearch_to_tsquery(CAST(:config AS regconfig), :q))
                   AS rank
        FROM threads t JOIN messages m ON m.thread_id = t.id
        WHERE t.user_id = :user_id
          AND m.search_vector @@ websearch_to_tsquery(CAST(:config AS regconfig), :q)
        UNION ALL
        SELECT 'thread', t.id, t.id, NULL, t.created_at,
               ts_rank(t.search_vector, websearch_to_tsquery(CAST(:config AS regconfig), :q))
        FROM threads t
        WHERE t.user_id = :user_id
          AND t.search_vector @@ websearch_to_tsquery(CAST(:config AS regconfig), :q)
    ), page AS (
        SELECT * FROM hits
        WHERE CAST(:after_rank AS real) IS NULL
           OR (rank, created_at, id)
              < (CAST(:after_rank AS real), CAST(:after_created AS timestamptz),
                 CAST(:after_id AS uuid))
        ORDER BY rank DESC, created_at DESC, id DESC
        LIMIT :fetch
    )
    SELECT page.kind, page.id, page.thread_id, page.role, page.created_at, page.rank,
           t.title,
           ts_headline(
               CAST(:config AS regconfig),
               translate(coalesce(m.content, t.title, ''), :marks, ''),
               websearch_to_tsquery(CAST(:config AS regconfig), :q),
               CASE WHEN length(coalesce(m.content, t.title, '')) > :short_chars
                    THEN :long_options ELSE :short_options END)
    FROM page
    JOIN threads t ON t.id = page.thread_id
    LEFT JOIN messages m ON page.kind = 'message' AND m.id = page.id
    ORDER BY page.rank DESC, page.created_at DESC, page.id DESC
    """
)


@dataclass(frozen=True)
class SearchCursor:
    """The sort key of the last hit a client received, and the query it belongs to."""

    rank: float
    created_at: datetime
    id: uuid.UUID
    query_key: str

    def encode(self) -> str:
        raw = json.dumps([self.rank, self.created_at.isoformat(), str(self.id), self.query_key])
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def query_key(q: str, config: str) -> str:
    """A short fingerprint of a query: a cursor only continues the query it came from."""
    return hashlib.sha256(f"{config}\0{q}".encode()).hexdigest()[:12]


def decode_cursor(token: str, *, q: str, config: str) -> SearchCursor:
    """Parse an `after` token.

    Raises:
        BadRequestError: it is not a cursor this service issued, or it belongs to another
            query.
    """
    try:
        padded = token + "=" * (-len(token) % 4)
        rank, created_at, hit_id, key = json.loads(base64.urlsafe_b64decode(padded))
        cursor = SearchCursor(
            rank=float(rank),
            created_at=datetime.fromisoformat(created_at),
            id=uuid.UUID(hit_id),
            query_key=str(key),
        )
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError) as e:
        raise BadRequestError(f"Unknown cursor 'after={token[:64]}'") from e
    if cursor.created_at.tzinfo is None:
        raise BadRequestError(f"Unknown cursor 'after={token[:64]}'")
    if cursor.query_key != query_key(q, config):
        raise BadRequestError("The cursor 'after' belongs to another query; start again")
    return cursor


async def search(
    db: AsyncSession,
    *,
    user_id: uuid.UUID,
    q: str,
    config: str,
    limit: int,
    after: SearchCursor | None,
) -> tuple[Page[SearchHit], SearchCursor | None]:
    """The caller's hits for `q`, best first, after the cursor `after`.

    Args:
        config: the text search configuration the vectors are built with.

    Returns:
        The page, and the cursor of its last hit (None for an empty page).
    """
    rows = await db.exec(  # type: ignore[call-overload]  # sqlmodel's exec() is typed for select(); a text() query runs the same way
        _SEARCH,
        params={
            "config": config,
            "q": q,
            "user_id": user_id,
            "after_rank": after.rank if after else None,
            "after_created": after.created_at if after else None,
            "after_id": after.id if after else None,
            "fetch": limit + 1,
            "marks": START_MARK + STOP_MARK,
            "short_chars": SHORT_TEXT_CHARS,
            "short_options": SHORT_HEADLINE,
            "long_options": LONG_HEADLINE,
        },
    )
    page = Page.from_rows([_hit(row) for row in rows.all()], limit)
    if not page.data:
        return page, None
    last = page.data[-1]
    hit_id = last.message_id if last.message_id is not None else last.thread_id
    key = query_key(q, config)
    return page, SearchCursor(last.rank, last.created_at, hit_id, key)


def _hit(row: Sequence[Any]) -> SearchHit:
    kind, hit_id, thread_id, role, created_at, rank, title, headline = row
    snippet, highlights = split_headline(headline or "")
    return SearchHit(
        kind=kind,
        thread_id=thread_id,
        thread_title=title,
        message_id=hit_id if kind == "message" else None,
        role=role,
        created_at=created_at,
        rank=rank,
        snippet=snippet,
        highlights=highlights,
    )


def split_headline(headline: str) -> tuple[str, list[tuple[int, int]]]:
    """Turn ts_headline's marked text into plain text and [start, end) code point ranges."""
    text: list[str] = []
    ranges: list[tuple[int, int]] = []
    start: int | None = None
    length = 0
    for char in headline:
        if char == START_MARK:
            start = length
        elif char == STOP_MARK:
            if start is not None and length > start:
                ranges.append((start, length))
            start = None
        else:
            text.append(char)
            length += 1
    return "".join(text), ranges
