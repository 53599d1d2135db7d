"""Bearer-token verification and signing.

Tokens are JWTs verified with a shared secret (HS256) or a public key (RS256/ES256). The key
is chosen by the token's `alg` header and each key only accepts its own algorithms, so a
public key can never be abused as an HMAC secret and `alg: none` is always refused.
"""

from __future__ import annotations

import logging
import os
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt

from app.config import AppEnv, Settings
from app.errors import UnauthorizedError
from app.models.text import unstorable_reason

logger = logging.getLogger(__name__)

HMAC_ALGORITHMS = ["HS256"]
PUBLIC_KEY_ALGORITHMS = ["RS256", "ES256"]
DEV_SECRET_FILENAME = "dev-jwt-secret"
# Longest `sub` accepted (users.subject holds it).
MAX_SUBJECT_CHARS = 255


@dataclass(frozen=True)
class TokenClaims:
    subject: str
    is_admin: bool


def dev_secret_path(settings: Settings) -> Path:
    return settings.DATA_DIR / DEV_SECRET_FILENAME


def resolve_secret(settings: Settings) -> str | None:
    """The HMAC secret: configured, or in development one generated once under DATA_DIR.

    Keeping the generated secret on disk means tokens survive a restart, and `make token`
    (a separate process) signs with the same key as the server.
    """
    if settings.AUTH_JWT_SECRET:
        return settings.AUTH_JWT_SECRET
    if settings.AUTH_JWT_PUBLIC_KEY or settings.APP_ENV == AppEnv.PRODUCTION:
        return None
    path = dev_secret_path(settings)
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(48)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secret)
    logger.info("Generated a development JWT secret in %s", path)
    return secret


class TokenService:
    """Verifies incoming tokens and signs tokens for the CLI and tests."""

    def __init__(self, settings: Settings, secret: str | None) -> None:
        self._secret = secret
        self._public_key = settings.AUTH_JWT_PUBLIC_KEY
        self._audience = settings.AUTH_JWT_AUDIENCE
        self._issuer = settings.AUTH_JWT_ISSUER
        self._admin_claim = settings.AUTH_ADMIN_CLAIM
        self._ttl = timedelta(minutes=settings.AUTH_TOKEN_TTL_MINUTES)

    @classmethod
    def from_settings(cls, settings: Settings) -> TokenService:
        return cls(settings, resolve_secret(settings))

    def verify(self, token: str) -> TokenClaims:
        """Check signature, expiry, audience and issuer, and return who the token names.

        Raises:
            UnauthorizedError: for any token that is not valid, with the reason.
        """
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as e:
            raise UnauthorizedError("Malformed token") from e
        key, algorithms = self._key_for(str(header.get("alg", "")))
        options: Any = {"require": ["exp", "sub"], "verify_aud": bool(self._audience)}
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=algorithms,
                audience=self._audience,
                issuer=self._issuer,
                options=options,
            )
        except jwt.ExpiredSignatureError as e:
            raise UnauthorizedError("Token has expired") from e
        except jwt.InvalidAudienceError as e:
            raise UnauthorizedError("Token audience is not accepted") from e
        except jwt.InvalidIssuerError as e:
            raise UnauthorizedError("Token issuer is not accepted") from e
        except jwt.MissingRequiredClaimError as e:
            raise UnauthorizedError(f"Token has no '{e.claim}' claim") from e
        except jwt.PyJWTError as e:
            raise UnauthorizedError("Token signature or format is invalid") from e
        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject.strip() or len(subject) > MAX_SUBJECT_CHARS:
            raise UnauthorizedError("Token 'sub' claim must be a non-empty string")
        problem = unstorable_reason(subject)
        if problem is not None:
            raise UnauthorizedError(f"Token 'sub' claim {problem}")
        return TokenClaims(subject=subject, is_admin=claims.get(self._admin_claim) is True)

    def _key_for(self, alg: str) -> tuple[str, list[str]]:
        if alg in HMAC_ALGORITHMS and self._secret:
            return self._secret, HMAC_ALGORITHMS
        if alg in PUBLIC_KEY_ALGORITHMS and self._public_key:
            return self._public_key, PUBLIC_KEY_ALGORITHMS
        raise UnauthorizedError(f"Token algorithm {alg or 'none'!r} is not accepted")

    def issue(self, subject: str, *, admin: bool = False, ttl: timedelta | None = None) -> str:
        """Sign an HS256 token for `subject` (the CLI's `token` command and tests)."""
        if not self._secret:
            raise RuntimeError(
                "Signing tokens needs AUTH_JWT_SECRET; with AUTH_JWT_PUBLIC_KEY, tokens come "
                "from your identity provider"
            )
        now = datetime.now(UTC)
        claims: dict[str, Any] = {"sub": subject, "iat": now, "exp": now + (ttl or self._ttl)}
        if admin:
            claims[self._admin_claim] = True
        if self._audience:
            claims["aud"] = self._audience
        if self._issuer:
            claims["iss"] = self._issuer
        return jwt.encode(claims, self._secret, algorithm="HS256")
