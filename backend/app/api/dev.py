"""Development sign-in: a token for any name, so the chat page works with `make run` alone.

It is what `make token USER=alice` does, over HTTP for the page's "Continue as" button. It
exists only outside production (`APP_ENV=production` never registers the route, so it is a
404 there) and only when the server can sign tokens itself; in production, tokens come from
the host app's identity provider and are handed to the page (see the README).
"""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, FastAPI, Response
from pydantic import BaseModel, ConfigDict, StringConstraints

from app.api.deps import SettingsDep, TokenServiceDep
from app.config import Settings
from app.errors import ERROR_RESPONSES

logger = logging.getLogger(__name__)

MAX_NAME_CHARS = 64
_LOOPBACK_HOSTS = {"127.0.0.1", "::1", "localhost"}

router = APIRouter(prefix="/dev", tags=["development"], responses=ERROR_RESPONSES)


class DevTokenCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Becomes the token's `sub`, so "alice" here is the same user as `make token USER=alice`.
    name: Annotated[
        str,
        StringConstraints(
            strip_whitespace=True,
            min_length=1,
            max_length=MAX_NAME_CHARS,
            pattern=r"^[^\x00-\x1f\x7f]+$",
        ),
    ]


class DevTokenPublic(BaseModel):
    token: str
    subject: str
    expires_in: int  # seconds


@router.post("/token", response_model=DevTokenPublic)
async def create_dev_token(
    *, response: Response, tokens: TokenServiceDep, settings: SettingsDep, body: DevTokenCreate
) -> DevTokenPublic:
    """Sign a token for `name` (development only: whoever reaches the server may be anyone)."""
    response.headers["Cache-Control"] = "no-store"
    return DevTokenPublic(
        token=tokens.issue(body.name),
        subject=body.name,
        expires_in=settings.AUTH_TOKEN_TTL_MINUTES * 60,
    )


def include_dev_routes(app: FastAPI, settings: Settings) -> None:
    """Register `POST /api/dev/token` when `settings.dev_sign_in_enabled`; warn if it is reachable."""
    if not settings.dev_sign_in_enabled:
        return
    if settings.HOST not in _LOOPBACK_HOSTS:
        logger.warning(
            "Development sign-in is on and the server listens on %s: anyone who reaches it can "
            "sign in as any user. Set APP_ENV=production for a deployment.",
            settings.HOST,
        )
    app.include_router(router, prefix="/api")
