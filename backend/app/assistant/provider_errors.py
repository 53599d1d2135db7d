"""What a model provider's failure means for the user: one of five classes, and safe facts.

Every failure of the provider path (the `openai` client over HTTP, and the stream checks in
`provider_models`) becomes a `ProviderError` carrying a `ProviderFailure`: its class, whether a
retry may help (and after how long, when the provider said), the setting an operator must fix
when it is a configuration problem, and what the log may say about it: the HTTP status, the
provider's request id, the base URL and the kind of exception. Never the API key, and never the
provider's message text, which can quote the conversation back.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import openai

from app.models.base import utc_now


class FailureKind(StrEnum):
    """The classes a provider failure falls into; the values are the SSE `error` codes."""

    UNAVAILABLE = "model_unavailable"  # down, refused, timed out, 5xx, a broken stream
    RATE_LIMITED = "model_rate_limited"  # 429: retry after the provider's Retry-After
    CONTEXT_TOO_LONG = "model_context_too_long"  # the conversation outgrew the context window
    BAD_REQUEST = "model_bad_request"  # any other refusal of the request itself
    MISCONFIGURED = "model_misconfigured"  # key, model or URL: an operator must fix a setting


RETRYABLE = frozenset({FailureKind.UNAVAILABLE, FailureKind.RATE_LIMITED})

# How providers word "too long" (OpenAI and vLLM: "maximum context length", llama.cpp:
# "exceeds the available context size", others "prompt is too long", "too many tokens").
_CONTEXT_WORDS = re.compile(
    r"context[ _](length|window|size)|maximum context|prompt is too long|too many tokens"
    r"|exceed_context",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class ProviderFailure:
    """A classified provider failure and the facts the log line may carry."""

    kind: FailureKind
    base_url: str
    cause: str  # an exception class or a fixed phrase: never text from the provider
    status: int | None = None
    request_id: str | None = None
    retry_after_s: int | None = None
    setting: str | None = None

    @property
    def retryable(self) -> bool:
        return self.kind in RETRYABLE

    def log_context(self) -> str:
        """`status=429 request_id=req_1 base_url=http://host/v1 cause=RateLimitError`."""
        return (
            f"status={self.status if self.status is not None else '-'} "
            f"request_id={self.request_id or '-'} base_url={self.base_url} cause={self.cause}"
        )


class ProviderError(Exception):
    """A model provider failed; `failure` says how. Raised from inside the model's stream."""

    def __init__(self, failure: ProviderFailure) -> None:
        super().__init__(f"{failure.kind}: {failure.log_context()}")
        self.failure = failure


def safe_base_url(url: object) -> str:
    """The URL without credentials, query or fragment (a proxy URL may carry a token)."""
    parts = urlsplit(str(url))
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))


def classify(error: Exception, *, base_url: str | None = None) -> ProviderFailure | None:
    """The failure `error` stands for, or None when it is not a provider failure.

    Args:
        error: What the `openai` client (or a provider stream) raised.
        base_url: The provider's base URL; default: the failed request's scheme and host.
    """
    if isinstance(error, ProviderError):
        return error.failure
    if not isinstance(error, openai.APIError):
        return None
    url = base_url or _request_origin(error)
    if isinstance(error, openai.APIStatusError):
        return _classify_status(error, url)
    cause = type(error).__name__
    if isinstance(error, openai.APIConnectionError) and error.__cause__ is not None:
        cause = f"{cause}/{type(error.__cause__).__name__}"
    return ProviderFailure(kind=FailureKind.UNAVAILABLE, base_url=url, cause=cause)


def broken_stream(
    what: str, *, base_url: str, request_id: str | None, status: int = 200
) -> ProviderError:
    """A stream that began with 200 and then went wrong (`what`: a fixed phrase)."""
    return ProviderError(
        ProviderFailure(
            kind=FailureKind.UNAVAILABLE,
            base_url=base_url,
            cause=what,
            status=status,
            request_id=request_id,
        )
    )


def _classify_status(error: openai.APIStatusError, base_url: str) -> ProviderFailure:
    status = error.status_code
    code, param, message = _field(error, "code"), _field(error, "param"), error.message
    kind, setting = FailureKind.BAD_REQUEST, None
    if status == 429 and code == "insufficient_quota":
        kind, setting = FailureKind.MISCONFIGURED, "OPENAI_API_KEY"  # billing: not temporary
    elif status == 429:
        kind = FailureKind.RATE_LIMITED
    elif status in (401, 403):
        kind, setting = FailureKind.MISCONFIGURED, "OPENAI_API_KEY"
    elif status == 404:
        about_model = code == "model_not_found" or "model" in message.lower()
        kind, setting = FailureKind.MISCONFIGURED, "MODEL" if about_model else "OPENAI_BASE_URL"
    elif status in (408, 409) or status >= 500:
        kind = FailureKind.UNAVAILABLE
    elif param == "stream_options" or "stream_options" in message:
        # An older server that refuses the usage request (see OPENAI_INCLUDE_USAGE).
        kind, setting = FailureKind.MISCONFIGURED, "OPENAI_INCLUDE_USAGE"
    elif status == 413 or code == "context_length_exceeded" or _CONTEXT_WORDS.search(message):
        kind = FailureKind.CONTEXT_TOO_LONG
    return ProviderFailure(
        kind=kind,
        base_url=base_url,
        cause=type(error).__name__,
        status=status,
        request_id=error.request_id,
        retry_after_s=_retry_after(error.response.headers),
        setting=setting,
    )


def _field(error: openai.APIStatusError, name: str) -> str | None:
    value = getattr(error, name, None)
    if value is None and isinstance(error.body, dict):
        inner = error.body.get("error", error.body)
        value = inner.get(name) if isinstance(inner, dict) else None
    return str(value) if value is not None else None


def _retry_after(headers: Any) -> int | None:
    """Whole seconds from `retry-after-ms`, `retry-after` (seconds or an HTTP date), or None."""
    try:
        milliseconds = headers.get("retry-after-ms")
        if milliseconds is not None:
            return max(1, math.ceil(float(milliseconds) / 1000))
        value = headers.get("retry-after")
        if value is None:
            return None
        try:
            seconds = float(value)
        except ValueError:
            seconds = (parsedate_to_datetime(value) - utc_now()).total_seconds()
    except (TypeError, ValueError, OverflowError):
        return None
    if not math.isfinite(seconds):
        return None
    return max(1, math.ceil(seconds))


def _request_origin(error: openai.APIError) -> str:
    request = getattr(error, "request", None)
    url = getattr(request, "url", None)
    if url is None:
        return "-"
    parts = urlsplit(str(url))
    return safe_base_url(f"{parts.scheme}://{parts.netloc}")
