"""What a client is told when a turn fails: a stable code, a safe message, retryable or not.

Messages never include exception text: it may hold user content or internals.
"""

from __future__ import annotations

import openai
from agents import MaxTurnsExceeded, ModelBehaviorError, UserError
from sqlalchemy.exc import SQLAlchemyError

from app.memory import MemoryBusyError, MemoryUnavailableError
from app.turns.events import TurnError


class LeaseLostError(Exception):
    """The turn's lease ran out (the database was unreachable too long) or was taken over."""


def describe_failure(e: Exception) -> TurnError:
    """What the client is told: a stable code, a safe message, whether a retry may help."""
    if isinstance(e, MemoryBusyError):
        return TurnError(code="memory_busy", message=e.message, retryable=True)
    if isinstance(e, MemoryUnavailableError):
        return TurnError(code="memory_unavailable", message=e.message, retryable=True)
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
    if isinstance(e, openai.APIError):
        return TurnError(
            code="model_unavailable", message="The model provider failed", retryable=True
        )
    return TurnError(code="internal_error", message="The turn failed", retryable=False)
