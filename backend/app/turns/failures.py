"""What a client is told when a turn fails: a stable code, a safe message, retryable or not.

Messages never include exception text: it may hold user content or internals. Model provider
failures are classified by `app.assistant.provider_errors` (five classes); the log line about
them carries the provider's status, request id and base URL (`failure_log_context`).
"""

from __future__ import annotations

from agents import MaxTurnsExceeded, ModelBehaviorError, UserError
from sqlalchemy.exc import SQLAlchemyError

from app.assistant.provider_errors import FailureKind, ProviderFailure, classify
from app.memory import MemoryBusyError, MemoryUnavailableError
from app.memory.provider_binding import ProviderConversationLostError
from app.turns.events import TurnError


class LeaseLostError(Exception):
    """The turn's lease ran out (the database was unreachable too long) or was taken over."""


def describe_failure(e: Exception) -> TurnError:
    """What the client is told: a stable code, a safe message, whether a retry may help."""
    if isinstance(e, MemoryBusyError):
        return TurnError(code="memory_busy", message=e.message, retryable=True)
    if isinstance(e, MemoryUnavailableError):
        return TurnError(code="memory_unavailable", message=e.message, retryable=True)
    if isinstance(e, ProviderConversationLostError):
        return TurnError(code="provider_conversation_lost", message=e.message, retryable=False)
    if isinstance(e, LeaseLostError):
        return TurnError(
            code="lease_lost",
            message="This reply could not be saved in time (the database was unreachable); "
            "send your message again",
            retryable=True,
        )
    if isinstance(e, TimeoutError):
        return TurnError(code="timeout", message="The reply took too long", retryable=True)
    if isinstance(e, MaxTurnsExceeded):
        return TurnError(
            code="agent_loop", message="The agent took too many steps", retryable=False
        )
    if isinstance(e, ModelBehaviorError | UserError):
        return TurnError(
            code="model_error", message="The model returned an unusable reply", retryable=True
        )
    if isinstance(e, SQLAlchemyError):
        return TurnError(
            code="storage_unavailable", message="The reply could not be saved", retryable=True
        )
    failure = classify(e)
    if failure is not None:
        return _provider_failure(failure)
    return TurnError(code="internal_error", message="The turn failed", retryable=False)


def failure_log_context(e: Exception) -> str:
    """` (provider status=… request_id=… base_url=… cause=…)` for provider failures, else ""."""
    failure = classify(e)
    return f" (provider {failure.log_context()})" if failure is not None else ""


def _provider_failure(failure: ProviderFailure) -> TurnError:
    retry_after = failure.retry_after_s if failure.retryable else None
    message = _MESSAGES[failure.kind].format(setting=failure.setting)
    if failure.retryable:
        message += f"; try again in {retry_after} s" if retry_after else "; try again shortly"
    return TurnError(
        code=failure.kind.value,
        message=message,
        retryable=failure.retryable,
        retry_after_seconds=retry_after,
        setting=failure.setting,
    )


_MESSAGES = {
    FailureKind.UNAVAILABLE: "The model provider is unavailable",
    FailureKind.RATE_LIMITED: "The model provider is rate limiting this server",
    FailureKind.CONTEXT_TOO_LONG: "This conversation is too long for the model; retrying "
    "will not help: start a new thread",
    FailureKind.BAD_REQUEST: "The model provider refused this request; retrying will not help",
    FailureKind.MISCONFIGURED: "The model provider refused this server's configuration "
    "(check {setting}); an operator has to fix it",
}
