"""Search the caller's own threads and messages (PostgreSQL full-text search)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from app.api.deps import CurrentUserDep, DbSessionDep, SettingsDep
from app.errors import ERROR_RESPONSES, UnprocessableError
from app.models.search import MAX_SEARCH_QUERY_CHARS, SearchResults
from app.models.text import StorableText
from app.services import search
from app.services.pagination import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE

router = APIRouter(prefix="/search", tags=["search"], responses=ERROR_RESPONSES)


@router.get("", response_model=SearchResults)
async def search_threads(
    *,
    db: DbSessionDep,
    user: CurrentUserDep,
    settings: SettingsDep,
    q: Annotated[
        StorableText,
        Query(
            description='Words, "a phrase", or, -excluded',
            # Documented for clients; checked by check_query, whose 422 names the limit.
            json_schema_extra={"minLength": 1, "maxLength": MAX_SEARCH_QUERY_CHARS},
        ),
    ],
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = DEFAULT_PAGE_SIZE,
    after: Annotated[str | None, Query(max_length=512)] = None,
) -> SearchResults:
    """Your thread titles and messages matching `q`, best first; pass `after` for more."""
    q = check_query(q)
    config = settings.SEARCH_TEXT_CONFIG
    cursor = None if after is None else search.decode_cursor(after, q=q, config=config)
    page, last = await search.search(
        db, user_id=user.id, q=q, config=config, limit=limit, after=cursor
    )
    return SearchResults(
        data=page.data, has_more=page.has_more, after=last.encode() if last else None
    )


def check_query(q: str) -> str:
    """A trimmed query. Raises UnprocessableError for a blank or over-long one."""
    q = q.strip()
    if not q:
        raise UnprocessableError("q must not be empty")
    if len(q) > MAX_SEARCH_QUERY_CHARS:
        raise UnprocessableError(f"q is {len(q)} characters; the limit is {MAX_SEARCH_QUERY_CHARS}")
    return q
