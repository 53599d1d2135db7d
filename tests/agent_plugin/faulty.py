"""Factories that import but cannot build an agent."""

from __future__ import annotations

from typing import Any

NOT_A_FACTORY = "build me"


def returns_a_string(*_: Any) -> str:
    return "not an agent"


def raises(*_: Any) -> None:
    raise RuntimeError("the support desk is closed\nsecond line")
